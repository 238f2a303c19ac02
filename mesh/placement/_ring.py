"""The placement ring: a multi-probe consistent-hash ring over weighted members.

How a key is placed (this is the contract every node computes identically):

* Each member owns ``vnodes * weight`` points on a ring of 2**48 positions
  (the top 48 bits of :func:`~mesh.placement._hashing.vnode_positions`);
  when those add up to more than ``max_points`` (``Config.placement_max_points``),
  each member's count is scaled by ``max_points / total`` (rounded down, at
  least 1), so no view builds a ring larger than about ``max_points``.
* A key gets ``probes`` probe positions (the top 48 bits of 64-bit words of
  the key's BLAKE2b digest).
* A member's distance to the key is the smallest clockwise distance from any
  probe to any of the member's points. The key's preference list is the list
  of members sorted by (distance, name); the owner is its first entry.

Because that order of members depends only on the key and the member names,
never on who else is in the view, a join only ever inserts the joining node
into a key's preference list and a leave only removes the leaving node; no
key moves between two nodes that stayed. Several probes per key make every
point own nearly the same share of the key space: 64 vnodes with 8 probes
balance about as well as a plain ring (``probes=1``) with 1,000 vnodes.

The hot path is pure Python: a bucket table over the ring gives, with one list
index per probe, a tuple of candidate points that holds the probe's next R
distinct members (a bucket with points in it also lists those points; the ones
before the probe come out as negative distances and are skipped), so a lookup
never searches the ring.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Generator, Iterable
from itertools import islice, repeat
from operator import and_
from typing import Any

from mesh.config import DEFAULT
from mesh.placement._hashing import (
    MAX_PROBES,
    key_bytes,
    probe_hashing,
    vnode_positions,
)
from mesh.placement._member import Member
from mesh.placement._shares import owned_shares_steps, run_steps
from mesh.placement._table import build_table

__all__ = ["DEFAULT_PROBES", "DEFAULT_VNODES", "MAX_MEMBERS", "MAX_PROBES", "Placement"]

#: Vnodes per unit of weight and probes per key: ``Config.placement_vnodes``
#: and ``Config.placement_probes`` (the reasons are written there).
DEFAULT_VNODES = DEFAULT.placement_vnodes
DEFAULT_PROBES = DEFAULT.placement_probes
DEFAULT_MAX_POINTS = DEFAULT.placement_max_points

_IDX_BITS = 16
#: A point is stored as ``position48 << 16 | member index``: at most 2**16 members.
MAX_MEMBERS = 1 << _IDX_BITS
_IDX = MAX_MEMBERS - 1
_POS = ((1 << 64) - 1) ^ _IDX
_WRAP = 1 << 64

#: Preference lists up to this length use a bucket table; longer ones walk.
_TABLE_MAX_R = 8
#: Owners and lists up to this length share one table (of this length).
_TABLE_BASE_R = 3
#: Buckets per ring point (a power of two at least this many times the points):
#: measured fastest at 1,000 members (fewer buckets lengthen the tuples of
#: buckets with points in them, more buckets miss the cache more often).
_TABLE_FACTOR = 4
_TABLE_MAX_BITS = 22


class Placement:
    """An immutable placement view: maps keys to preference lists of members.

    Guarantees:

    * ``preference_list(key, r)`` holds ``min(r, len(self))`` distinct member
      names, owner first, and depends only on the key, the members' names and
      weights, ``vnodes`` and ``probes``: any process on any machine with the
      same view computes the same list (no salted ``hash()``, no set order).
    * Joins and leaves are minimal: adding a member only inserts it into some
      keys' lists (the displaced last entry drops off); removing one only
      deletes it from the lists it was in (the next member moves up). Raising a
      member's weight only moves keys to that member.
    * A member of weight ``w`` owns about ``w`` times the key space of a member
      of weight 1 (:meth:`shares` gives the exact fractions).

    Members may be given as :class:`Member` or as plain names (weight 1), in any
    order; names must be unique. Building costs O(P log P) for
    ``P = min(vnodes * total weight, max_points)`` points (past ``max_points``
    every member's points are scaled down alike, each keeping at least one,
    so P stays below ``max_points + len(members)``); the lookup table is built on the first
    lookup (one table serves owners and lists of up to 3; longer lists up to 8
    get one each, longer ones are computed without a table).
    """

    __slots__ = ("_base", "_base_table", "_hasher", "_index", "_masks", "_max_points",
                 "_members", "_names", "_points", "_probes", "_shares", "_shift",
                 "_tables", "_unpack", "_vnodes")

    def __init__(
        self,
        members: Iterable[Member | str] = (),
        *,
        vnodes: int = DEFAULT_VNODES,
        probes: int = DEFAULT_PROBES,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
            raise ValueError(f"max_points must be an int of at least 1, got {max_points!r}")
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or vnodes < 1:
            raise ValueError(f"vnodes must be an int of at least 1, got {vnodes!r}")
        probe_hashing(probes)  # raises for a bad count before any work
        ms = sorted(m if isinstance(m, Member) else Member(m) for m in members)
        names = tuple(m.name for m in ms)
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate member names: {dupes}")
        if len(ms) > MAX_MEMBERS:
            raise ValueError(f"at most {MAX_MEMBERS} members, got {len(ms)}")
        self._view(tuple(ms), vnodes, probes, max_points)
        counts = [vnodes * m.weight for m in ms]
        total = sum(counts)
        if total > max_points:  # scale every member down alike (at least one point)
            counts = [max(1, c * max_points // total) for c in counts]
        points: list[int] = []
        for idx, m in enumerate(ms):
            pos = vnode_positions(m.name, counts[idx])
            points += map(int.__or__, map(and_, pos, repeat(_POS)), repeat(idx))
        points.sort()
        # Fresh int objects in ring order: neighbours on the ring end up
        # neighbours in memory, which keeps lookups cache-friendly.
        self._set_points(list(map(int.__xor__, points, repeat(0))))

    @classmethod
    def _assemble(cls, ms: tuple[Member, ...], points: list[int], vnodes: int, probes: int,
                  max_points: int) -> Placement:
        """A view of members sorted by name and its sorted points (``_build``)."""
        self = cls.__new__(cls)
        self._view(ms, vnodes, probes, max_points)
        self._set_points(points)
        return self

    def _view(self, ms: tuple[Member, ...], vnodes: int, probes: int, max_points: int) -> None:
        self._hasher, self._unpack = probe_hashing(probes)
        self._members, self._names = ms, tuple(m.name for m in ms)
        self._index = dict(zip(self._names, range(len(ms)), strict=True))
        self._vnodes, self._probes, self._max_points = vnodes, probes, max_points

    def _set_points(self, points: list[int]) -> None:
        self._points = points
        self._shift = table_shift(len(points))
        self._tables: dict[int, list[tuple[int, ...]]] = {}
        self._base = min(_TABLE_BASE_R, len(self._names))
        self._base_table: list[tuple[int, ...]] | None = None
        self._masks = (_POS,) * self._probes
        self._shares: dict[str, float] | None = None

    # ------------------------------------------------------------- the view
    @property
    def members(self) -> tuple[Member, ...]:
        """The members, sorted by name."""
        return self._members

    @property
    def names(self) -> tuple[str, ...]:
        """The member names, sorted."""
        return self._names

    @property
    def vnodes(self) -> int:
        """Ring points per unit of member weight."""
        return self._vnodes

    @property
    def probes(self) -> int:
        """Probe positions hashed per key."""
        return self._probes

    @property
    def points(self) -> int:
        """How many points the ring holds (what a build costs)."""
        return len(self._points)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Placement):
            return NotImplemented
        return (self._members, self._vnodes, self._probes, self._max_points) == (
            other._members,
            other._vnodes,
            other._probes,
            other._max_points,
        )

    def __hash__(self) -> int:
        return hash((self._members, self._vnodes, self._probes, self._max_points))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._members, self._vnodes, self._probes, self._max_points))

    def __repr__(self) -> str:
        shown = ", ".join(f"{m.name}:{m.weight}" for m in self._members[:5])
        more = f", ... ({len(self)} members)" if len(self) > 5 else ""
        return f"Placement([{shown}{more}], vnodes={self._vnodes}, probes={self._probes})"

    # --------------------------------------------------------------- lookups
    def preference_list(self, key: str | bytes, r: int) -> tuple[str, ...]:
        """The ``min(r, len(self))`` distinct members that should hold ``key``,
        owner first; ``()`` for an empty view. ``r`` must be at least 1."""
        if 1 < r <= self._base:
            # The common case (R = 2 or 3), inlined: see _ranked for the method.
            kb = key.encode() if type(key) is str else key_bytes(key)
            tbl = self._base_table or self._build_table(self._base)
            shift = self._shift
            h = self._hasher.copy()
            h.update(kb)
            cand = [
                v - q
                for q in map(and_, self._unpack(h.digest()), self._masks)
                for v in tbl[q >> shift]
            ]
            cand.sort()
            if cand[0] < 0:
                del cand[: bisect_left(cand, 0)]
            names = self._names
            a = cand[0] & _IDX
            b = cand[1] & _IDX
            if r == 3:
                c = cand[2] & _IDX
                if a != b and a != c and b != c:
                    return (names[a], names[b], names[c])
            elif a != b:
                return (names[a], names[b])
            return _distinct(cand, r, names)
        if r < 1:
            raise ValueError(f"r must be at least 1, got {r}")
        if not self._names:
            return ()
        kb = key.encode() if type(key) is str else key_bytes(key)
        h = self._hasher.copy()
        h.update(kb)
        probes = self._unpack(h.digest())
        return self._ranked(probes, min(r, len(self._names)))

    def owner(self, key: str | bytes) -> str:
        """The first member of ``key``'s preference list.

        Raises :class:`LookupError` when the view is empty.
        """
        if not self._names:
            raise LookupError("an empty placement has no owner for any key")
        kb = key.encode() if type(key) is str else key_bytes(key)
        h = self._hasher.copy()
        h.update(kb)
        probes = self._unpack(h.digest())
        return self._names[self._owner_index(probes)]

    def key_probes(self, key: str | bytes) -> tuple[int, ...]:
        """The probe positions of ``key`` (64-bit words, as hashed).

        Hashing is the larger part of a lookup; on a view change the exec
        layer (``mesh.exec._ring.Ring.compare``) hashes each key once and
        ranks it in both views with :meth:`preference_list_of_probes`.
        """
        h = self._hasher.copy()
        h.update(key_bytes(key))
        return self._unpack(h.digest())

    def preference_list_of_probes(self, probes: tuple[int, ...], r: int) -> tuple[str, ...]:
        """:meth:`preference_list` for a key whose :meth:`key_probes` are given."""
        if r < 1:
            raise ValueError(f"r must be at least 1, got {r}")
        if len(probes) != self._probes:
            raise ValueError(f"expected {self._probes} probes, got {len(probes)}")
        if not self._names:
            return ()
        return self._ranked(probes, min(r, len(self._names)))

    def _candidates(self, probes: tuple[int, ...], rt: int) -> list[int]:
        """Sorted distances (``distance48 << 16 | member index``) from the
        probes to candidate points, of which every member in the true top
        ``rt`` has one at its true distance: each probe contributes at least
        its next ``rt`` distinct members, and no value is below its member's
        true distance (a value is a real point's clockwise distance)."""
        tbl = self._tables.get(rt) or self._build_table(rt)
        shift = self._shift
        cand = [v - q for q in map(and_, probes, self._masks) for v in tbl[q >> shift]]
        cand.sort()
        if cand[0] < 0:  # points of a bucket that lie before the probe
            del cand[: bisect_left(cand, 0)]
        return cand

    def _owner_index(self, probes: tuple[int, ...]) -> int:
        tbl = self._base_table or self._build_table(self._base)
        shift = self._shift
        cand = [v - q for q in map(and_, probes, self._masks) for v in tbl[q >> shift]]
        return min(filter(_NON_NEGATIVE, cand)) & _IDX

    def _ranked(self, probes: tuple[int, ...], rr: int) -> tuple[str, ...]:
        if rr == 1:
            return (self._names[self._owner_index(probes)],)
        if rr > _TABLE_MAX_R:
            return self._ranked_by_walking(probes, rr)
        # A member in the true top rr is always among the candidates of the probe
        # it is closest to (otherwise rr members would beat it), at its true
        # distance; so the first rr distinct members of the candidates are the list.
        return _distinct(self._candidates(probes, max(rr, self._base)), rr, self._names)

    def _ranked_by_walking(self, probes: tuple[int, ...], rr: int) -> tuple[str, ...]:
        pts = self._points
        n = len(pts)
        best: dict[int, int] = {}
        for p in probes:
            q = p & _POS
            i = bisect_left(pts, q)
            seen: set[int] = set()
            while len(seen) < rr:
                v = pts[i] if i < n else pts[i - n] + _WRAP
                i += 1
                idx = v & _IDX
                if idx in seen:
                    continue
                seen.add(idx)
                d = v - q
                if d < best.get(idx, _WRAP << 1):
                    best[idx] = d
        ranked = sorted(best, key=best.__getitem__)[:rr]
        return tuple(self._names[i] for i in ranked)

    def _build_table(self, rr: int, table: list[tuple[int, ...]] | None = None
                     ) -> list[tuple[int, ...]]:
        """Bucket table for preference lists of length ``rr`` (see
        :func:`~mesh.placement._table.build_table`), or ``table`` built so."""
        if table is None:
            table = build_table(self._points, rr, self._shift)
        self._tables[rr] = table
        if rr == self._base:
            self._base_table = table
        return table

    # ----------------------------------------------------------------- shares
    def shares(self) -> dict[str, float]:
        """Each member's exact fraction of the key space it owns (is first in
        the preference list for), keyed by name in name order; sums to 1.

        Exact for ideal hashes: with ``k`` probes, a point whose preceding gap
        is ``g`` owns ``integral_0^g k (1 - F(t))**(k-1) dt``, where ``F(t)`` is
        the fraction of the ring within clockwise distance ``t`` of a point.
        """
        return run_steps(self.shares_steps(len(self._points) + 1))

    def shares_steps(self, step: int) -> Generator[None, None, dict[str, float]]:
        """:meth:`shares`, yielding after every ``step`` points of the work."""
        if self._shares is None:
            pts = self._points
            positions = [v >> _IDX_BITS for v in pts]
            yield
            owners = [v & _IDX for v in pts]
            per = (yield from owned_shares_steps(positions, owners, len(self._names),
                                                 self._probes, step)) if pts else []
            self._shares = dict(zip(self._names, per, strict=True)) if pts else {}
        return dict(self._shares)


_NON_NEGATIVE = (0).__le__


def table_shift(points: int) -> int:
    """The bucket table of a ring of ``points`` points has ``2**(64 - shift)`` buckets."""
    return 64 - min(_TABLE_MAX_BITS, max(4, (points * _TABLE_FACTOR - 1).bit_length()))


def _distinct(cand: list[int], r: int, names: tuple[str, ...]) -> tuple[str, ...]:
    """The names of the first ``r`` distinct members in the sorted distances ``cand``."""
    return tuple(map(names.__getitem__, islice(dict.fromkeys(map(and_, cand, repeat(_IDX))), r)))


def _rebuild(members: tuple[Member, ...], vnodes: int, probes: int,
             max_points: int = DEFAULT_MAX_POINTS) -> Placement:
    """Unpickle a :class:`Placement` (its tables are rebuilt, not shipped)."""
    return Placement(members, vnodes=vnodes, probes=probes, max_points=max_points)
