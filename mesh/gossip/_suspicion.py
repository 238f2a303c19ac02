"""Lifeguard's dynamic suspicion timeout.

A suspicion starts with a long timeout and shrinks towards a minimum as
independent members confirm it: ``k`` confirmations bring it down to the
minimum, on a log curve. A suspicion raised by one slow or badly connected
prober therefore waits long enough to be refuted, while one that many members
agree on finishes quickly. (Lifeguard, section IV-B.)
"""

from __future__ import annotations

import math


class Suspicion:
    """The timer of one suspicion about one member. Pure arithmetic: the owner
    asks :attr:`deadline` and feeds confirmations with :meth:`confirm`."""

    __slots__ = ("_confirmers", "deadline", "k", "max_timeout", "min_timeout", "start")

    def __init__(
        self, start: float, first: str, k: int, min_timeout: float, max_timeout: float
    ) -> None:
        self.start = start
        self.k = max(0, k)
        self.min_timeout = min_timeout
        self.max_timeout = max(min_timeout, max_timeout)
        self._confirmers = {first}
        self.deadline = start + self.timeout()

    @property
    def confirmations(self) -> int:
        """Independent confirmations beyond the first suspicion."""
        return len(self._confirmers) - 1

    def timeout(self) -> float:
        """The current timeout, from :attr:`start`."""
        if self.k < 1:
            return self.min_timeout
        frac = math.log(self.confirmations + 1) / math.log(self.k + 1)
        raw = self.max_timeout - frac * (self.max_timeout - self.min_timeout)
        return max(self.min_timeout, raw)

    def confirm(self, sender: str) -> bool:
        """Count ``sender``'s suspicion. Returns True if it was new (a new,
        independent confirmation), which shortens the deadline."""
        if self.confirmations >= self.k or sender in self._confirmers:
            return False
        self._confirmers.add(sender)
        self.deadline = self.start + self.timeout()
        return True
