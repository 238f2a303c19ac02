"""Which nodes hold a key: the exec layer's view of placement.

Wraps :mod:`mesh.placement` (consistent hashing over alive members, weighted
by their worker count) and memoises preference lists per view, because the
hot path asks for the same key several times (submit, store, acknowledge).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

try:
    from mesh.placement import Member as PMember
    from mesh.placement import Placement
except ImportError:  # placement not landed yet: weighted rendezvous hashing
    from typing import NamedTuple

    class PMember(NamedTuple):  # type: ignore[no-redef]
        name: str
        weight: int

    class Placement:  # type: ignore[no-redef]
        def __init__(self, members: list[PMember]) -> None:
            self._members = list(members)

        def preference_list(self, key: str, r: int) -> tuple[str, ...]:
            scored = []
            for m in self._members:
                h = hashlib.blake2b(f"{m.name}\0{key}".encode(), digest_size=8).digest()
                u = (int.from_bytes(h, "big") + 1) / 2.0**64
                scored.append((-m.weight / -math.log(u), m.name))
            scored.sort()
            return tuple(name for _, name in scored[:r])

_MEMO = 65536


class Ring:
    """Preference lists of length ``min(replicas, alive)`` over one view."""

    __slots__ = ("_memo", "_placement", "names", "replicas", "weights")

    def __init__(self, members: list[tuple[str, int]], replicas: int) -> None:
        self.weights = dict(sorted(members))
        self.names = frozenset(self.weights)
        self.replicas = max(1, min(replicas, len(members)))
        self._placement = Placement([PMember(n, max(1, w)) for n, w in sorted(members)])
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

    def forget(self, key: str) -> None:
        self._memo.pop(key, None)
