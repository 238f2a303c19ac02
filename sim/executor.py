"""A simulated executor: jobs take simulated time on simulated workers.

:class:`SimExecutor` implements :class:`mesh.exec.Executor` on virtual time:
each job takes a random simulated duration on one of ``workers`` simulated
workers, then its function runs in-process (the simulator trusts its own
tasks). A job may "crash its worker" at random (``crash_rate``) or always
(functions that raise :class:`SimWorkerCrash`), which reports ``CRASHED``
exactly like a dead worker process would.

Values follow the real executor's contract (:mod:`mesh.exec._handoff`): given
a ``spill`` directory (a :class:`mesh.store.MemorySpillDir`: no real files), a
result whose out-of-band buffers total at least ``oob_threshold`` is written
there and reported as ``OK_VALUE`` with a :class:`mesh.store.Value` whose
``source`` names it; an ``OK_VALUE`` dependency is a ``Value``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import cloudpickle

from mesh.config import DEFAULT
from mesh.exec._executor import Job, Outcome, OutcomeHandler
from mesh.exec._handoff import adopt_result, encode_result, load_dep, write_result
from mesh.protocol import payload as P
from mesh.store import SpillDir, Value
from sim.runtime import SimRuntime

__all__ = ["SimExecutor", "SimWorkerCrash"]


class SimWorkerCrash(Exception):
    """Raised by a task function to make :class:`SimExecutor` report that the
    task killed its worker process."""


class SimExecutor:
    """An :class:`~mesh.exec.Executor` on virtual time (see the module doc)."""

    def __init__(self, runtime: SimRuntime, rng: random.Random, *, workers: int = 2,
                 depth: int = 2, mean_duration: float = 0.05, crash_rate: float = 0.0,
                 spill: SpillDir | None = None,
                 oob_threshold: int = DEFAULT.oob_threshold,
                 crash_log: dict[str, int] | None = None) -> None:
        self.workers = workers
        self._crash_log = crash_log
        """Random crashes (``crash_rate``) per task key, for the checkers."""
        self._runtime = runtime
        self._rng = rng
        self._depth = depth
        self._mean = mean_duration
        self._crash_rate = crash_rate
        self._queue: list[Job] = []
        self._busy = 0
        self._timers: dict[int, Any] = {}
        self._next = 0
        self._on: OutcomeHandler | None = None
        self._stopped = False
        self._fns: dict[bytes, Callable[..., Any]] = {}
        self.crashes = 0
        self._spill = spill
        self._threshold = oob_threshold if spill is not None else None
        self._files = 0

    async def start(self, on_outcomes: OutcomeHandler) -> None:
        self._on = on_outcomes

    @property
    def takes_values(self) -> bool:
        """With a spill directory, Value inputs are read as they are."""
        return self._spill is not None

    def capacity(self, fn: bytes | None = None) -> int:
        return max(0, self.workers * self._depth - self._busy - len(self._queue))

    def run(self, jobs: list[Job]) -> None:
        self._queue.extend(jobs)
        self._pump()

    def run_solo(self, job: Job) -> None:
        self._queue.append(job)
        self._pump()

    async def stop(self) -> None:
        self._stopped = True
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

    def _pump(self) -> None:
        while self._queue and self._busy < self.workers and not self._stopped:
            job = self._queue.pop(0)
            self._busy += 1
            duration = self._rng.expovariate(1.0 / self._mean)
            self._next += 1
            n = self._next
            self._timers[n] = self._runtime.call_later(
                duration, lambda job=job, n=n: self._finish(job, n))

    def _finish(self, job: Job, n: int) -> None:
        self._busy -= 1
        self._timers.pop(n, None)
        if self._stopped or self._on is None:
            return
        tid, blob, akind, args, deps = job
        if self._rng.random() < self._crash_rate:
            outcome = (tid, P.CRASHED, b"")
            if self._crash_log is not None:
                self._crash_log[tid] = self._crash_log.get(tid, 0) + 1
        else:
            outcome = self._execute(tid, blob, akind, args, deps)
        if outcome[1] == P.CRASHED:
            self.crashes += 1
        self._on([outcome])
        self._pump()

    def _execute(self, tid: str, blob: bytes, akind: int, args: bytes,
                 deps: dict | None) -> Outcome:
        fn = self._fns.get(blob)
        if fn is None:
            fn = self._fns[blob] = cloudpickle.loads(blob)
        try:
            values = {k: load_dep(kind, payload, self._spill) for k, (kind, payload) in
                      (deps or {}).items()}
            a, kw = P.loads_args(akind, args, values)
            result = fn(*a, **kw)
        except SimWorkerCrash:
            return tid, P.CRASHED, b""
        except Exception as exc:  # the task's error is its result
            return (tid, *P.dumps_error(exc))
        encoded = encode_result(tid, result, self._threshold)
        if not isinstance(encoded, Value):
            return (tid, *encoded)
        assert self._spill is not None
        name = f"sim-{self._files}"
        self._files += 1
        kind, written = write_result(tid, self._spill, name, encoded)
        if kind != P.OK_VALUE:
            return tid, kind, written
        return (tid, *adopt_result(tid, self._spill, *written))
