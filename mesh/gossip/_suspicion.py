"""Lifeguard's dynamic suspicion timeout.

A suspicion starts with a long timeout and shrinks towards a minimum as
independent members confirm it: ``k`` confirmations bring it down to the
minimum, on a log curve. A suspicion raised by one slow or badly connected
prober therefore waits long enough to be refuted, while one that many members
agree on finishes quickly. (Lifeguard, section IV-B.)
"""

from __future__ import annotations

import heapq
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

    def confirm(self, sender: str, not_before: float = -math.inf) -> bool:
        """Count ``sender``'s suspicion. Returns True if it was new (a new,
        independent confirmation), which shortens the deadline, though not
        below ``not_before``: the owner tells the suspect at each
        confirmation, and its answer needs a round trip to come back."""
        if self.confirmations >= self.k or sender in self._confirmers:
            return False
        self._confirmers.add(sender)
        self.deadline = min(self.deadline, max(self.start + self.timeout(), not_before))
        return True


class Suspicions:
    """Every open suspicion of one node, by member name, with the earliest
    deadline at hand.

    Deadlines sit in a heap, so asking for the next one, or for those that ran
    out, does not walk every suspicion (a partition leaves a node suspecting
    half the cluster). An entry whose suspicion was dropped, replaced or
    shortened since it was pushed is skipped when it comes up.
    """

    __slots__ = ("_by_name", "_heap", "_seq")

    def __init__(self) -> None:
        self._by_name: dict[str, Suspicion] = {}
        self._heap: list[tuple[float, int, str, Suspicion]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> Suspicion | None:
        return self._by_name.get(name)

    def start(self, name: str, suspicion: Suspicion) -> None:
        """Open (or replace) the suspicion about ``name``."""
        self._by_name[name] = suspicion
        self._push(name, suspicion)

    def pop(self, name: str) -> Suspicion | None:
        """Close the suspicion about ``name``, if any."""
        return self._by_name.pop(name, None)

    def confirm(self, name: str, sender: str, not_before: float = -math.inf) -> bool:
        """:meth:`Suspicion.confirm` on the suspicion about ``name``."""
        s = self._by_name.get(name)
        if s is None or not s.confirm(sender, not_before):
            return False
        self._push(name, s)  # its deadline moved earlier
        return True

    def next_deadline(self) -> float:
        """The earliest deadline of an open suspicion (infinity if none)."""
        heap = self._heap
        while heap:
            deadline, _, name, s = heap[0]
            if self._by_name.get(name) is s and s.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return math.inf

    def expired(self, now: float) -> list[str]:
        """Names whose suspicion ran out by ``now``, sorted. Each is reported
        once; it stays open until popped (the caller declares it dead)."""
        heap = self._heap
        due: list[str] = []
        while heap and heap[0][0] <= now:
            deadline, _, name, s = heapq.heappop(heap)
            if self._by_name.get(name) is s and s.deadline == deadline:
                due.append(name)
        due.sort()
        return due

    def _push(self, name: str, s: Suspicion) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (s.deadline, self._seq, name, s))
