"""What a node's workers finished lately: a bounded task stream and a rate.

The exec service calls :meth:`TaskLog.started` when it hands jobs to its
executor and :meth:`TaskLog.finished` with their outcomes. The log keeps the
last :data:`RECENT` finished runs (key, outcome, duration) and the number
finished in each of the last :data:`WINDOW` seconds, so the dashboard, ``mesh
status`` and ``/metrics`` read a rate without any timer. Times come from the
runtime's clock, passed in: the simulator runs this unchanged.

A duration runs from the hand-off to the executor to the outcome, so it
includes the time a task waited in its worker's batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["RECENT", "WINDOW", "TaskLog"]

RECENT = 200
"""Finished runs kept for the task stream: a few screens of the dashboard's
list, about 20 KB per node."""

WINDOW = 10
"""Seconds the rate is averaged over: long enough to smooth batches of tiny
tasks, short enough that a stalled node shows 0 within seconds."""

OUTCOME_NAMES = {0: "ok", 1: "ok", 2: "error", 3: "killed", 4: "failed", 5: "crashed"}
"""Result kinds of :mod:`mesh.exec._payload` as the task stream shows them."""


class TaskLog:
    """Recent finished runs and per-second completion counts for one node."""

    __slots__ = ("_buckets", "_started", "finished_total", "recent")

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.recent: deque[tuple[int, str, str, float, float]] = deque(maxlen=RECENT)
        """``(seq, key, outcome, finished_at, duration_s)``, oldest first."""
        self._buckets: deque[list[float]] = deque()
        """``[second, count]`` for the last :data:`WINDOW` seconds."""
        self.finished_total = 0
        """Runs finished here since start; the ``seq`` of the newest entry."""

    def started(self, keys: Iterable[str], now: float) -> None:
        for key in keys:
            self._started[key] = now

    def finished(self, outcomes: Iterable[tuple[str, int, object]], now: float) -> None:
        n = 0
        for key, kind, _ in outcomes:
            began = self._started.pop(key, now)
            self.finished_total += 1
            n += 1
            outcome = OUTCOME_NAMES.get(kind, str(kind))
            self.recent.append((self.finished_total, key, outcome, now, now - began))
        if n:
            second = float(int(now))
            if self._buckets and self._buckets[-1][0] == second:
                self._buckets[-1][1] += n
            else:
                self._buckets.append([second, n])
            self._trim(now)

    def forget(self) -> None:
        """Drop start times of jobs that will never report (executor stopped)."""
        self._started.clear()

    def _trim(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - WINDOW - 1:
            self._buckets.popleft()

    def rate(self, now: float) -> float:
        """Runs finished per second over the last :data:`WINDOW` seconds (the
        current one included, so a burst shows at once)."""
        self._trim(now)
        current = float(int(now))
        total = sum(c for s, c in self._buckets if current - WINDOW < s <= current)
        return total / WINDOW

    def since(self, seq: int, limit: int) -> list[list]:
        """At most ``limit`` runs newer than ``seq``, newest last, as lists
        ``[seq, key, outcome, finished_at, duration_s]``."""
        out: list[list] = []
        for entry in reversed(self.recent):
            if entry[0] <= seq or len(out) >= limit:
                break
            out.append(list(entry))
        out.reverse()
        return out
