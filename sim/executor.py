"""A simulated executor: jobs take simulated time on simulated workers.

:class:`SimExecutor` implements :class:`mesh.exec.Executor` on virtual time:
each job takes a random simulated duration on one of ``workers`` simulated
workers, then its function runs in-process (the simulator trusts its own
tasks). A job may "crash its worker" at random (``crash_rate``) or always
(functions that raise :class:`SimWorkerCrash`), which reports ``CRASHED``
exactly like a dead worker process would.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import cloudpickle

from mesh.exec._executor import Job, OutcomeHandler
from mesh.protocol import payload as P
from sim.runtime import SimRuntime

__all__ = ["SimExecutor", "SimWorkerCrash"]


class SimWorkerCrash(Exception):
    """Raised by a task function to make :class:`SimExecutor` report that the
    task killed its worker process."""


class SimExecutor:
    """An :class:`~mesh.exec.Executor` on virtual time (see the module doc)."""

    def __init__(self, runtime: SimRuntime, rng: random.Random, *, workers: int = 2,
                 depth: int = 2, mean_duration: float = 0.05, crash_rate: float = 0.0) -> None:
        self.workers = workers
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

    async def start(self, on_outcomes: OutcomeHandler) -> None:
        self._on = on_outcomes

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
        else:
            outcome = self._execute(tid, blob, akind, args, deps)
        if outcome[1] == P.CRASHED:
            self.crashes += 1
        self._on([outcome])
        self._pump()

    def _execute(self, tid: str, blob: bytes, akind: int, args: bytes,
                 deps: dict | None) -> tuple[str, int, bytes]:
        fn = self._fns.get(blob)
        if fn is None:
            fn = self._fns[blob] = cloudpickle.loads(blob)
        try:
            values = {k: P.loads_value(kind, payload) for k, (kind, payload) in
                      (deps or {}).items()}
            a, kw = P.loads_args(akind, args, values)
            kind, payload = P.dumps_value(fn(*a, **kw))
        except SimWorkerCrash:
            return tid, P.CRASHED, b""
        except Exception as exc:  # the task's error is its result
            kind, payload = P.dumps_error(exc)
        return tid, kind, payload
