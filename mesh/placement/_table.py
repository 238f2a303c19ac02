"""The lookup table of a placement ring (see :mod:`mesh.placement._ring`)."""

from __future__ import annotations

from itertools import chain, compress, repeat
from operator import add, and_, eq, ne, rshift, sub

__all__ = ["build_table"]

_IDX = (1 << 16) - 1  # a point's member index (mesh.placement._ring)
_WRAP = 1 << 64


def build_table(pts: list[int], rr: int, shift: int) -> list[tuple[int, ...]]:
    """Bucket table for preference lists of length ``rr`` over the sorted
    points ``pts`` (``position48 << 16 | member index``), ``2**(64 - shift)``
    buckets.

    ``succ[i]`` is the next ``rr`` points with distinct members from point
    ``i`` on (index ``len(points)`` wraps to the start). A bucket without
    points maps to ``succ`` of the first point after it. A bucket holding
    points ``i .. j`` maps to those points followed by ``succ[j + 1]``: for
    a probe anywhere in the bucket that holds ``succ`` of the probe's next
    point, because ``succ[i]`` is within point ``i`` and ``succ[i + 1]``."""
    n = len(pts)
    ext = pts + list(map(add, pts, repeat(_WRAP)))
    succ = list(zip(*(ext[j : j + n + 1] for j in range(rr)), strict=True))
    if rr > 1:
        owners = list(map(and_, ext[: n + rr], repeat(_IDX)))
        bad: set[int] = set()
        for d in range(1, rr):
            for j in compress(range(n + rr), map(eq, owners, owners[d:])):
                bad.update(range(max(0, j + d - rr + 1), min(j, n) + 1))
        # From the right: succ[i] is point i, then succ[i + 1] without
        # point i's member. Linear, however long one member's runs are
        # (walking each run from every point in it was quadratic).
        for i in sorted(bad, reverse=True):
            if i < n:
                mine = ext[i] & _IDX
                nxt = [v for v in succ[i + 1] if v & _IDX != mine]
                succ[i] = (ext[i], *nxt[: rr - 1])
                continue
            got: list[int] = []
            seen: set[int] = set()
            j = i
            while len(got) < rr:
                v = ext[j]
                j += 1
                if v & _IDX not in seen:
                    seen.add(v & _IDX)
                    got.append(v)
            succ[i] = tuple(got)
    # Built with C-level iterators only: per occupied bucket, one run of
    # copies of the next point's succ, then the bucket's own tuple.
    buckets = list(map(rshift, pts, repeat(shift)))
    firsts = list(compress(range(n), map(ne, buckets, [-1, *buckets[:-1]])))
    ends = [*firsts[1:], n]
    occupied = list(map(buckets.__getitem__, firsts))
    empties = map(sub, occupied, map(add, [-1, *occupied[:-1]], repeat(1)))
    inside = map(tuple, map(pts.__getitem__, map(slice, firsts, ends)))
    own = map(add, inside, map(succ.__getitem__, ends))
    runs = zip(map(repeat, map(succ.__getitem__, firsts), empties), zip(own), strict=True)
    table: list[tuple[int, ...]] = list(chain.from_iterable(chain.from_iterable(runs)))
    table.extend(repeat(succ[n], (1 << (64 - shift)) - len(table)))
    return table

