"""Consistent-hash placement, sans-IO: which alive members hold a key.

From the current view (alive members, weighted by their worker count) every
node computes the same preference list for any key (a task id, a data
partition id): R distinct members, owner first. When the view changes, the
exec layer compares each held key's lists in the old and new views
(``mesh.exec._ring.Ring.compare``) and hands keys to their new holders.

    >>> from mesh.placement import Member, Placement
    >>> view = Placement([Member("a"), Member("b", weight=8), Member("c")])
    >>> view.preference_list("task-1", 2) == view.preference_list(b"task-1", 2)
    True

The algorithm (multi-probe consistent hashing with vnodes) and the figures
that chose it are in docs/placement.md.
"""

from mesh.placement._build import Builder
from mesh.placement._member import Member, member_weight
from mesh.placement._ring import (
    DEFAULT_PROBES,
    DEFAULT_VNODES,
    MAX_MEMBERS,
    MAX_PROBES,
    Placement,
)

__all__ = [
    "DEFAULT_PROBES",
    "DEFAULT_VNODES",
    "MAX_MEMBERS",
    "MAX_PROBES",
    "Builder",
    "Member",
    "Placement",
    "member_weight",
]
