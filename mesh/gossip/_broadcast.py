"""The queue of membership updates waiting to be piggybacked.

Each update is about one member; a newer update about the same member
replaces the older one (it would be wrong to spread both). Every update is
sent ``retransmit_limit`` times in all, which grows as ``lambda * log(N)``, and
the least-sent updates go first (newest first among equals), so fresh news
spreads fastest.

Updates are kept in one list per transmit count, newest last, so taking a
datagram's worth costs time in proportion to what is taken, not to the
queue's length: a cluster-wide join queues one update per member on every
member, and every datagram takes from the queue. A replaced update is not
searched for and removed; it stays in its list, marked stale, and is dropped
when it is reached.
"""

from __future__ import annotations


class _Entry:
    __slots__ = ("node", "payload", "transmits")

    def __init__(self, node: str, payload: bytes) -> None:
        self.node = node
        self.payload = payload
        self.transmits = 0


class BroadcastQueue:
    """Updates to piggyback, at most one live one per member. Deterministic:
    order comes from insertion, never from hashing."""

    __slots__ = ("_buckets", "_live")

    def __init__(self) -> None:
        self._buckets: dict[int, list[_Entry]] = {}  # transmits -> entries, newest last
        self._live: dict[str, _Entry] = {}  # node -> its current entry

    def __len__(self) -> int:
        return len(self._live)

    def push(self, node: str, payload: bytes) -> None:
        """Queue ``payload`` (one encoded message about ``node``), replacing any
        update about ``node`` still queued."""
        entry = _Entry(node, payload)
        self._live[node] = entry  # any older entry is now stale
        self._buckets.setdefault(0, []).append(entry)

    def take(self, budget: int, limit: int, max_count: int = 64) -> list[bytes]:
        """Up to ``budget`` bytes of updates, least-transmitted first. Each one
        returned counts as a transmission; one sent ``limit`` times is dropped."""
        live = self._live
        if not live or budget <= 0:
            return []
        out: list[bytes] = []
        sent: list[_Entry] = []
        skipped: list[_Entry] = []
        buckets = self._buckets
        for transmits in sorted(buckets):
            lst = buckets[transmits]
            while lst and len(out) < max_count and len(skipped) <= 8:
                entry = lst.pop()
                if live.get(entry.node) is not entry:
                    continue  # replaced by a newer update, or already dropped
                size = len(entry.payload)
                if size > budget:
                    skipped.append(entry)  # look a little for a smaller one
                    continue
                out.append(entry.payload)
                budget -= size
                sent.append(entry)
                if budget < 8:  # nothing useful fits any more
                    break
            if skipped:  # put them back where they were, in their order
                lst.extend(reversed(skipped))
                skipped.clear()
            if not lst:
                del buckets[transmits]
            if budget < 8 or len(out) >= max_count:
                break
        for entry in sent:
            entry.transmits += 1
            if entry.transmits >= limit:
                del live[entry.node]
            else:
                buckets.setdefault(entry.transmits, []).append(entry)
        return out
