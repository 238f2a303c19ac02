"""Lifeguard's local health multiplier ("awareness").

A node that misses acks, is asked to refute suspicions about itself, or sees
its indirect probes go unanswered without nacks is probably the slow or lossy
one. It then stretches its own probe interval and timeout by ``score + 1``
instead of accusing healthy peers. Successful probes bring the score back
down. (Lifeguard, section IV-A.)
"""

from __future__ import annotations


class Awareness:
    """A score in ``[0, max_multiplier - 1]``. Pure; no clock needed."""

    __slots__ = ("max_multiplier", "score")

    def __init__(self, max_multiplier: int) -> None:
        self.max_multiplier = max(1, max_multiplier)
        self.score = 0

    def apply(self, delta: int) -> None:
        self.score = min(self.max_multiplier - 1, max(0, self.score + delta))

    def scale(self, timeout: float) -> float:
        """``timeout`` stretched by the current health: ``timeout * (score + 1)``."""
        return timeout * (self.score + 1)
