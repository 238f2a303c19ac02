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

    def pref(self, key: str) -> tuple[str, ...]:
        """The nodes that hold ``key``, owner first (empty for an empty view)."""
        got = self._memo.get(key)
        if got is None:
            if not self.names:
                return ()
            got = tuple(self._placement.preference_list(key, self.replicas))
            self._memo[key] = got
            if len(self._memo) > _MEMO:
                self._memo.popitem(last=False)
        return got

    def compare(self, new: Ring, key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(self.pref(key), new.pref(key))``, hashing the key once when both
        placements probe alike (a view change examines every held key)."""
        a, b = self._placement, new._placement
        if not self.names or not new.names or a.probes != b.probes:
            return self.pref(key), new.pref(key)
        probes = a.key_probes(key)
        return (a.preference_list_of_probes(probes, self.replicas),
                b.preference_list_of_probes(probes, new.replicas))

    def forget(self, key: str) -> None:
        self._memo.pop(key, None)
