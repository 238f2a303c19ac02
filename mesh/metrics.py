"""Counters a node keeps about itself, and a rate-limited logger for noise.

Counters are plain integers keyed by name; ``snapshot()`` returns them sorted
by name so that output and traces never depend on insertion or hash order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable


class Metrics:
    """A bag of named integer counters. Not thread-safe; one per node."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def inc(self, name: str, n: int = 1) -> None:
        self._counts[name] = self._counts.get(name, 0) + n

    def get(self, name: str) -> int:
        return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        """All counters, sorted by name."""
        return {k: self._counts[k] for k in sorted(self._counts)}


class RateLimitedLog:
    """Logs at most one line per ``key`` every ``interval`` seconds, and says how
    many were suppressed in between. The clock is passed in (runtime seam)."""

    __slots__ = ("_clock", "_interval", "_last", "_logger", "_suppressed")

    def __init__(self, logger: logging.Logger, clock: Callable[[], float], interval: float = 5.0):
        self._logger = logger
        self._clock = clock
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        suffix = f" ({skipped} similar suppressed)" if skipped else ""
        self._logger.warning(msg + suffix, *args)
