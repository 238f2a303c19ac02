"""The queue of membership updates waiting to be piggybacked.

Each update is about one member; a newer update about the same member
replaces the older one (it would be wrong to spread both). Every update is
sent ``retransmit_limit`` times in all, which grows as ``lambda * log(N)``, and
the least-sent updates go first (newest first among equals), so fresh news
spreads fastest.

Updates are kept in buckets by transmit count, so taking a datagram's worth
costs time in proportion to what is taken, not to the queue's length; a
cluster-wide join queues one update per member on every member.
"""

from __future__ import annotations


class BroadcastQueue:
    """Updates to piggyback, at most one per member. Deterministic: order comes
    from insertion, never from hashing."""

    __slots__ = ("_buckets", "_where")

    def __init__(self) -> None:
        # transmits -> {node: payload}, each dict in insertion (age) order
        self._buckets: dict[int, dict[str, bytes]] = {}
        self._where: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._where)

    def push(self, node: str, payload: bytes) -> None:
        """Queue ``payload`` (one encoded message about ``node``), replacing any
        update about ``node`` still queued."""
        old = self._where.pop(node, None)
        if old is not None:
            self._remove(old, node)
        self._buckets.setdefault(0, {})[node] = payload
        self._where[node] = 0

    def take(self, budget: int, limit: int, max_count: int = 64) -> list[bytes]:
        """Up to ``budget`` bytes of updates, least-transmitted first. Each one
        returned counts as a transmission; one sent ``limit`` times is dropped."""
        if not self._where or budget <= 0:
            return []
        out: list[bytes] = []
        moved: list[tuple[str, bytes, int]] = []
        used = 0
        misses = 0
        for transmits in sorted(self._buckets):
            bucket = self._buckets[transmits]
            for node in reversed(bucket):  # newest first
                payload = bucket[node]
                size = len(payload)
                if used + size > budget:
                    misses += 1
                    if misses > 8:  # look a little for a smaller one, not forever
                        break
                    continue
                out.append(payload)
                used += size
                moved.append((node, payload, transmits))
                if len(out) >= max_count or budget - used < 8:
                    break
            if len(out) >= max_count or budget - used < 8 or misses > 8:
                break
        for node, payload, transmits in moved:
            self._remove(transmits, node)
            if transmits + 1 >= limit:
                del self._where[node]
            else:
                self._buckets.setdefault(transmits + 1, {})[node] = payload
                self._where[node] = transmits + 1
        return out

    def _remove(self, transmits: int, node: str) -> None:
        bucket = self._buckets[transmits]
        del bucket[node]
        if not bucket:
            del self._buckets[transmits]
