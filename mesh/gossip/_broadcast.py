"""The queue of membership updates waiting to be piggybacked.

Each update is about one member; a newer update about the same member
replaces the older one (it would be wrong to spread both). Every update is
sent ``retransmit_limit`` times in all, which grows as ``lambda * log(N)``, and
the least-sent updates go first, so fresh news spreads fastest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Item:
    node: str
    payload: bytes
    transmits: int
    order: int


class BroadcastQueue:
    """Updates to piggyback, at most one per member. Deterministic: ties are
    broken by insertion order, never by hashing."""

    __slots__ = ("_counter", "_items")

    def __init__(self) -> None:
        self._items: dict[str, _Item] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self._items)

    def push(self, node: str, payload: bytes) -> None:
        """Queue ``payload`` (one encoded message about ``node``), replacing any
        update about ``node`` still queued."""
        self._counter += 1
        self._items[node] = _Item(node, payload, 0, self._counter)

    def take(self, budget: int, limit: int, max_count: int = 64) -> list[bytes]:
        """Up to ``budget`` bytes of updates, least-transmitted first. Each one
        returned counts as a transmission; one sent ``limit`` times is dropped."""
        if not self._items or budget <= 0:
            return []
        ordered = sorted(self._items.values(), key=lambda it: (it.transmits, -it.order))
        out: list[bytes] = []
        used = 0
        for item in ordered:
            size = len(item.payload)
            if used + size > budget:
                continue
            out.append(item.payload)
            used += size
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[item.node]
            if len(out) >= max_count or budget - used < 8:
                break
        return out
