"""Which nodes hold a key: the exec layer's view of placement.

Wraps :mod:`mesh.placement` (consistent hashing over alive members, weighted
by their worker count) and memoises preference lists per view, because the
hot path asks for the same key several times (submit, store, acknowledge).
"""

from __future__ import annotations

from collections import OrderedDict

from mesh.config import DEFAULT
from mesh.placement import DEFAULT_PROBES, DEFAULT_VNODES, Placement
from mesh.placement import Member as PMember

_MEMO = 65536


class Ring:
    """Preference lists of length ``min(replicas, alive)`` over one view."""

    __slots__ = ("_memo", "_placement", "names", "replicas", "weights")

    def __init__(self, members: list[tuple[str, int]], replicas: int, *,
                 vnodes: int = DEFAULT_VNODES, probes: int = DEFAULT_PROBES,
                 max_points: int = DEFAULT.placement_max_points) -> None:
        self.weights = dict(sorted(members))
        self.names = frozenset(self.weights)
        self.replicas = max(1, min(replicas, len(members)))
        self._placement = Placement([PMember(n, max(1, w)) for n, w in sorted(members)],
                                    vnodes=vnodes, probes=probes, max_points=max_points)
        self._memo: OrderedDict[str, tuple[str, ...]] = OrderedDict()

    def pref(self, key: str, n: int = 0) -> tuple[str, ...]:
        """The nodes that hold ``key``, owner first (empty for an empty view):
        ``min(n, alive)`` of them, or ``min(replicas, alive)`` when ``n`` is 0.
        A shorter list is a prefix of a longer one (placement ranks members
        by distance), so the first nodes of every list agree."""
        if n and n != self.replicas:
            m = min(n, len(self.names))
            if m < self.replicas:
                return self.pref(key)[:m]
            if m != self.replicas:
                return tuple(self._placement.preference_list(key, m))
        got = self._memo.get(key)
        if got is None:
            if not self.names:
                return ()
            got = tuple(self._placement.preference_list(key, self.replicas))
            self._memo[key] = got
            if len(self._memo) > _MEMO:
                self._memo.popitem(last=False)
        return got

    def compare(self, new: Ring, key: str, n: int = 0
                ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(self.pref(key, n), new.pref(key, n))``, hashing the key once when
        both placements probe alike (a view change examines every held key)."""
        a, b = self._placement, new._placement
        if not self.names or not new.names or a.probes != b.probes:
            return self.pref(key, n), new.pref(key, n)
        probes = a.key_probes(key)
        return (a.preference_list_of_probes(probes, self._length(n)),
                b.preference_list_of_probes(probes, new._length(n)))

    def _length(self, n: int) -> int:
        return max(1, min(n, len(self.names))) if n else self.replicas

    def forget(self, key: str) -> None:
        self._memo.pop(key, None)
