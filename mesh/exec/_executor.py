"""The executor seam: where a node's tasks actually run.

The exec service never starts processes itself; it is handed an
:class:`Executor`. :class:`mesh.exec.ProcessExecutor` runs jobs in worker
subprocesses; ``sim.executor.SimExecutor`` runs them in-process on virtual
time. Both keep the contract written here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Job = list
"""``[tid, function bytes, args kind, args payload, deps or None]``. ``tid``
is the task key; ``deps`` is ``{key: [kind, payload]}`` with each input's
result kind: ``OK_MSGPACK`` / ``OK_PICKLE`` with ``bytes``, or ``OK_VALUE``
with a :class:`mesh.store.Value`. :class:`mesh.exec.ProcessExecutor` passes a
worker such a value as the name of its ``source`` file (writing a value that
has none to a file first) and every other field as it is (see
:mod:`mesh.exec._worker`)."""

Outcome = tuple[str, int, Any]
"""``(tid, kind, payload)`` with a result kind from :mod:`mesh.protocol.payload`:
``bytes`` for every kind but ``OK_VALUE``, whose payload is a
:class:`mesh.store.Value` (from an executor given a spill directory: its
buffers map the file ``source`` names there, which the node adopts);
``CRASHED`` when the process running the job died."""

OutcomeHandler = Callable[[list[Outcome]], None]


class Executor(Protocol):
    """Runs jobs and reports each one's outcome exactly once.

    Guarantees: every job given to :meth:`run` or :meth:`run_solo` produces one
    outcome through the handler passed to :meth:`start` (``CRASHED`` if its
    process died), unless :meth:`stop` is called first. Outcomes may arrive in
    any order and in batches. The handler is called from the event loop,
    never concurrently with itself.
    """

    workers: int
    """How many jobs can run at the same time (the node's placement weight)."""

    @property
    def takes_values(self) -> bool:
        """Whether a Job's inputs may be :class:`mesh.store.Value` objects
        (the executor hands them to its workers without a copy: a file name,
        or the value itself in the simulator); otherwise the node passes each
        as a pickle stream."""

    async def start(self, on_outcomes: OutcomeHandler) -> None: ...

    def capacity(self, fn: bytes | None = None) -> int:
        """How many more jobs (of function ``fn``, when known) :meth:`run`
        should be given now to keep every worker busy; 0 when saturated."""

    def run(self, jobs: list[Job]) -> None:
        """Queue jobs; they are batched to workers. Never blocks."""

    def run_solo(self, job: Job) -> None:
        """Queue a job that crashed a worker before: it runs in a batch of its
        own, so a crash can be blamed on it alone."""

    async def stop(self) -> None:
        """End every worker. Jobs still running get no outcome."""
