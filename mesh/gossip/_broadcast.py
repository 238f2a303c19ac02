"""The queue of membership updates waiting to be piggybacked.

Each update is about one member; a newer update about the same member
replaces the older one (it would be wrong to spread both). Every update is
sent ``retransmit_limit`` times in all, which grows as ``lambda * log(N)``, and
the least-sent updates go first (newest first among equals), so fresh news
spreads fastest.

Updates are kept in one bucket per transmit count, newest last, so taking a
datagram's worth costs time in proportion to what is taken, not to the
queue's length. A replaced update is not searched for and removed; it stays
in its bucket, stale, and is dropped when it is reached.

Layout, because in a large mesh this runs for every datagram over queues that
are cold in the CPU's caches (a cluster-wide join queues one update per member
on every member): a bucket is three parallel lists (member names, payloads,
payload sizes), so choosing what fits reads only contiguous list slots and
small ints, and the run that fits moves with slices. An update is live while
``_live`` maps its member to that very payload object; the queue counts its
stale entries and checks liveness only while there are any.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate, compress
from operator import is_

#: The smallest update there is (a ``dead`` or ``suspect`` with one-letter
#: names is larger): a smaller budget holds none.
_MIN_UPDATE = 8
#: Updates too big for the rest of a budget that are passed over, at most, in
#: favour of smaller ones behind them.
_MAX_SKIPS = 9


class _Bucket:
    __slots__ = ("names", "payloads", "sizes")

    def __init__(self) -> None:
        self.names: list[str] = []
        self.payloads: list[bytes] = []
        self.sizes: list[int] = []


class BroadcastQueue:
    """Updates to piggyback, at most one live one per member. Deterministic:
    order comes from insertion, never from hashing."""

    __slots__ = ("_buckets", "_live", "_stale")

    def __init__(self) -> None:
        self._buckets: dict[int, _Bucket] = {}  # transmits -> updates, newest last
        self._live: dict[str, bytes] = {}  # member -> payload of its current update
        self._stale = 0  # entries in buckets that are no longer live

    def __len__(self) -> int:
        return len(self._live)

    def push(self, node: str, payload: bytes) -> None:
        """Queue ``payload`` (one encoded message about ``node``), replacing any
        update about ``node`` still queued."""
        if node in self._live:
            self._stale += 1  # the older entry stays behind, stale
        self._live[node] = payload
        b = self._buckets.get(0)
        if b is None:
            b = self._buckets[0] = _Bucket()
        b.names.append(node)
        b.payloads.append(payload)
        b.sizes.append(len(payload))

    def take(self, budget: int, limit: int, max_count: int = 64) -> list[bytes]:
        """Up to ``budget`` bytes of updates, least-transmitted first. Each one
        returned counts as a transmission; one sent ``limit`` times is dropped.

        Within a transmit count the newest go first. An update too big for what
        is left of the budget is passed over (up to 9 of them) in favour of
        smaller ones behind it, which keep their place. A budget under 8 bytes
        holds no update and gets none."""
        live = self._live
        if not live or budget < _MIN_UPDATE:
            return []
        out: list[bytes] = []
        sent: list[tuple[int, list[str], list[bytes], list[int]]] = []
        buckets = self._buckets
        for transmits in sorted(buckets):
            b = buckets[transmits]
            names, payloads, sizes = b.names, b.payloads, b.sizes
            t_names: list[str] = []
            t_payloads: list[bytes] = []
            t_sizes: list[int] = []
            # The newest run that is live and fits, by slices. While the queue
            # has stale entries, a window at the end is swept of them first;
            # ``clean`` counts the entries at the end known to be live.
            clean = len(names) if not self._stale else 0
            while names and budget >= _MIN_UPDATE:
                room = max_count - len(out) - len(t_names)
                if room <= 0:
                    break
                if clean < room and clean < len(names):
                    hi = len(names) - clean  # sweep the entries just before the clean ones
                    lo = max(0, hi - (room - clean) - 8)
                    alive = list(map(is_, map(live.get, names[lo:hi]), payloads[lo:hi]))
                    dead = alive.count(False)
                    if dead:
                        self._stale -= dead
                        names[lo:hi] = compress(names[lo:hi], alive)
                        payloads[lo:hi] = compress(payloads[lo:hi], alive)
                        sizes[lo:hi] = compress(sizes[lo:hi], alive)
                    clean += hi - lo - dead
                    continue
                run = sizes[len(sizes) - min(room, clean) :]
                run.reverse()
                n = bisect_right(list(accumulate(run)), budget)
                if not n:
                    break  # the newest does not fit
                t_names += reversed(names[-n:])
                t_payloads += reversed(payloads[-n:])
                t_sizes += run[:n]
                budget -= sum(run[:n])
                del names[-n:], payloads[-n:], sizes[-n:]
                clean -= n
            # Then one by one: pass over updates too big, drop stale ones.
            skipped = 0
            i = len(names)
            while i and len(out) + len(t_names) < max_count and skipped < _MAX_SKIPS:
                if budget < _MIN_UPDATE:
                    break
                i -= 1
                if self._stale and live.get(names[i]) is not payloads[i]:
                    del names[i], payloads[i], sizes[i]
                    self._stale -= 1
                    continue
                size = sizes[i]
                if size > budget:
                    skipped += 1
                    continue
                t_names.append(names.pop(i))
                t_payloads.append(payloads.pop(i))
                t_sizes.append(sizes.pop(i))
                budget -= size
            if not names:
                del buckets[transmits]
            if t_names:
                out += t_payloads
                sent.append((transmits + 1, t_names, t_payloads, t_sizes))
            if budget < _MIN_UPDATE or len(out) >= max_count:
                break
        for transmits, t_names, t_payloads, t_sizes in sent:
            if transmits >= limit:
                for node in t_names:
                    del live[node]
                continue
            b = buckets.get(transmits)
            if b is None:
                b = buckets[transmits] = _Bucket()
            b.names += t_names
            b.payloads += t_payloads
            b.sizes += t_sizes
        return out
