"""The lookup table of a placement ring (see :mod:`mesh.placement._ring`)."""

from __future__ import annotations

from collections.abc import Generator
from itertools import chain, compress, repeat
from operator import add, and_, eq, ne, rshift, sub

__all__ = ["build_table", "table_steps"]

_IDX = (1 << 16) - 1  # a point's member index (mesh.placement._ring)
_WRAP = 1 << 64


def build_table(pts: list[int], rr: int, shift: int) -> list[tuple[int, ...]]:
    """Bucket table for preference lists of length ``rr`` over the sorted
    points ``pts`` (``position48 << 16 | member index``), ``2**(64 - shift)``
    buckets, built at once (:func:`table_steps` builds it in slices).

    ``succ[i]`` is the next ``rr`` points with distinct members from point
    ``i`` on (index ``len(points)`` wraps to the start). A bucket without
    points maps to ``succ`` of the first point after it. A bucket holding
    points ``i .. j`` maps to those points followed by ``succ[j + 1]``: for
    a probe anywhere in the bucket that holds ``succ`` of the probe's next
    point, because ``succ[i]`` is within point ``i`` and ``succ[i + 1]``."""
    steps = table_steps(pts, rr, shift, max(1, len(pts) * 2))
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def table_steps(pts: list[int], rr: int, shift: int, step: int
                ) -> Generator[None, None, list[tuple[int, ...]]]:
    """:func:`build_table` as a generator that yields after each slice of
    about ``step`` points' (or buckets') work and returns the table: a caller
    runs one slice per event-loop turn, so no turn does more than a slice."""
    n = len(pts)
    ext = list(pts)
    for a in range(0, n, step):
        ext.extend(map(add, pts[a : a + step], repeat(_WRAP)))
        yield
    succ: list[tuple[int, ...]] = []
    for a in range(0, n + 1, step):  # succ[i] = ext[i : i + rr]
        b = min(n + 1, a + step)
        succ.extend(zip(*(ext[j + a : j + b] for j in range(rr)), strict=True))
        yield
    if rr > 1:
        owners = list(map(and_, ext[: n + rr], repeat(_IDX)))
        bad: set[int] = set()
        for a in range(0, n + rr, step):
            for d in range(1, rr):
                b = min(n + rr - d, a + step)
                for j in compress(range(a, b), map(eq, owners[a:b], owners[a + d : b + d])):
                    bad.update(range(max(0, j + d - rr + 1), min(j, n) + 1))
            yield
        order = sorted(bad, reverse=True)
        yield
        # From the right: succ[i] is point i, then succ[i + 1] without
        # point i's member. Linear, however long one member's runs are
        # (walking each run from every point in it was quadratic).
        for count, i in enumerate(order, 1):
            if count % step == 0:
                yield
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
    firsts: list[int] = []
    for a in range(0, n, step):
        b = min(n, a + step)
        before = [buckets[a - 1] if a else -1, *buckets[a : b - 1]]
        firsts.extend(compress(range(a, b), map(ne, buckets[a:b], before)))
        yield
    ends = [*firsts[1:], n]
    occupied = list(map(buckets.__getitem__, firsts))
    yield
    table: list[tuple[int, ...]] = []
    size = 1 << (64 - shift)
    per = max(1, step // 4)  # a bucket with points costs a tuple and a few copies
    for a in range(0, len(firsts), per):
        b = min(len(firsts), a + per)
        occ = occupied[a:b]
        empties = map(sub, occ, map(add, [occupied[a - 1] if a else -1, *occ[:-1]], repeat(1)))
        inside = map(tuple, map(pts.__getitem__, map(slice, firsts[a:b], ends[a:b])))
        own = map(add, inside, map(succ.__getitem__, ends[a:b]))
        runs = zip(map(repeat, map(succ.__getitem__, firsts[a:b]), empties), zip(own),
                   strict=True)
        table.extend(chain.from_iterable(chain.from_iterable(runs)))
        yield
    while len(table) < size:
        table.extend(repeat(succ[n], min(size - len(table), 4 * step)))
        yield
    return table
