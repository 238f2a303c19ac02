"""Building a placement view in slices of bounded work.

A view of thousands of members with many workers each costs 0.1-0.3 s to
build (sorting members, hashing their points, sorting the points, the lookup
table). Done at once, that stalls the event loop that also answers gossip.
:class:`Builder` does the same work as :class:`~mesh.placement.Placement`
plus its lookup table, in slices of about ``step`` units (members, points or
table buckets) each; the caller runs one slice per loop turn and keeps its
old view for lookups until :attr:`Builder.placement` is ready. Sans-IO: it
never decides when a slice runs.

The result is the same view ``Placement(members, ...)`` gives (same points,
same lists, same tables), so every node still computes the same lists.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator, Iterable
from itertools import islice, pairwise, repeat
from operator import and_, eq

from mesh.config import DEFAULT
from mesh.placement._hashing import probe_hashing, vnode_positions
from mesh.placement._member import Member
from mesh.placement._ring import _POS, _TABLE_MAX_R, MAX_MEMBERS, Placement
from mesh.placement._table import table_steps

__all__ = ["Builder"]

_Steps = Generator[None, None, list]


def _sorted(items: list, step: int) -> _Steps:
    """``sorted(items)`` in slices: sorted runs of ``step``, then a k-way merge
    taken ``step`` items at a time."""
    runs = []
    for a in range(0, len(items), step):
        runs.append(sorted(items[a : a + step]))
        yield
    if len(runs) <= 1:
        return runs[0] if runs else []
    merged = heapq.merge(*runs)
    out: list = []
    while len(out) < len(items):
        out.extend(islice(merged, step))
        yield
    return out


class Builder:
    """Builds ``Placement(members, vnodes=, probes=, max_points=)`` and the
    lookup table for lists of ``replicas`` in slices: call :meth:`step` until
    it returns True, then read :attr:`placement`. ``members`` are
    ``(name, weight)`` pairs or :class:`Member`; errors are those of
    :class:`Placement`, raised by the step that finds them."""

    __slots__ = ("_gen", "placement", "step_size", "steps")

    def __init__(self, members: Iterable[Member | tuple[str, int]], *, replicas: int = 3,
                 vnodes: int = DEFAULT.placement_vnodes, probes: int = DEFAULT.placement_probes,
                 max_points: int = DEFAULT.placement_max_points,
                 step: int = DEFAULT.placement_build_slice) -> None:
        for what, v in (("max_points", max_points), ("vnodes", vnodes), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{what} must be an int of at least 1, got {v!r}")
        probe_hashing(probes)  # raises for a bad count
        pairs = [(m.name, m.weight) if isinstance(m, Member) else tuple(m) for m in members]
        self.step_size = step
        self.steps = 0
        """Slices run so far."""
        self.placement: Placement | None = None
        self._gen = self._work(pairs, replicas, vnodes, probes, max_points, step)

    def step(self) -> bool:
        """Run one slice; True once :attr:`placement` is ready."""
        if self.placement is not None:
            return True
        self.steps += 1
        try:
            next(self._gen)
        except StopIteration as done:
            self.placement = done.value
            return True
        return False

    def run(self) -> Placement:
        """Every remaining slice at once (for tests and tools)."""
        while not self.step():
            pass
        assert self.placement is not None
        return self.placement

    @staticmethod
    def _work(pairs: list[tuple[str, int]], replicas: int, vnodes: int, probes: int,
              max_points: int, step: int) -> Generator[None, None, Placement]:
        pairs = yield from _sorted(pairs, step)
        ms: list[Member] = []
        per = max(1, step // 2)  # a Member checks its fields in Python: about 1 us
        for a in range(0, len(pairs), per):
            ms.extend(Member(name, weight) for name, weight in pairs[a : a + per])
            yield
        names = [m.name for m in ms]
        if any(map(eq, names, islice(names, 1, None))):
            dupes = sorted({a for a, b in pairwise(names) if a == b})
            raise ValueError(f"duplicate member names: {dupes}")
        if len(ms) > MAX_MEMBERS:
            raise ValueError(f"at most {MAX_MEMBERS} members, got {len(ms)}")
        total = vnodes * sum(m.weight for m in ms)
        yield
        points: list[int] = []
        done = 0
        for idx, m in enumerate(ms):
            count = vnodes * m.weight
            if total > max_points:  # scaled as Placement scales them
                count = max(1, count * max_points // total)
            pos = vnode_positions(m.name, count)
            points += map(int.__or__, map(and_, pos, repeat(_POS)), repeat(idx))
            done += count + 4  # a member's own overhead counts too
            if done >= step:
                done = 0
                yield
        points = yield from _sorted(points, step)
        fresh: list[int] = []  # fresh ints in ring order (see Placement)
        for a in range(0, len(points), step):
            fresh.extend(map(int.__xor__, points[a : a + step], repeat(0)))
            yield
        view = Placement._assemble(tuple(ms), fresh, vnodes, probes, max_points)
        yield
        # the tables lookups of lists of ``replicas`` use (Placement._ranked)
        rr = min(replicas, len(ms))
        lengths = [view._base] + ([rr] if view._base < rr <= _TABLE_MAX_R else [])
        for length in lengths:
            if length >= 1:
                table = yield from table_steps(fresh, length, view._shift, step)
                view._build_table(length, table)
        return view
