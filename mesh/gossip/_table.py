"""The member table of one node: what it believes about every member, kept
with the indexes the protocol reads on every packet.

A component of :class:`mesh.gossip._membership.Membership` (and read by its
:class:`~mesh.gossip._probe.Prober`); sans-IO, like the rest of the layer.
"""

from __future__ import annotations

import bisect
from typing import Any

import msgpack

from mesh.errors import ConfigError
from mesh.gossip._state import Member


class MemberTable:
    """Members by name, the sorted live peers, and the gone ones by when."""

    __slots__ = ("_order", "gone_at", "gone_names", "live", "members")

    def __init__(self) -> None:
        self.members: dict[str, Member] = {}
        self._order: list[str] | None = None  # sorted names, kept by put/drop
        self.live: list[str] = []
        """Sorted names of alive and suspect peers (not this node). Do not modify."""
        self.gone_names: list[str] = []
        """Dead or left peers, oldest first (they are only ever added at the
        time they go): the ones to forget are a prefix, the ones still
        gossiped to (``gossip_to_dead``) a suffix."""
        self.gone_at: list[float] = []

    def put(self, m: Member) -> None:
        """Store our belief about ``m.name``: the only writer of ``members``."""
        if m.name not in self.members:
            self._order = None
        self.members[m.name] = m

    def drop(self, name: str) -> None:
        del self.members[name]
        self._order = None

    def names(self) -> list[str]:
        """Every known member's name, sorted. Do not modify."""
        if self._order is None:
            self._order = sorted(self.members)
        return self._order

    def set(self, member: Member, now: float) -> None:
        """Store ``member`` and move it between the live and gone indexes."""
        old = self.members.get(member.name)
        self.put(member)
        was_live = old is not None and not old.status.gone
        if was_live == member.status.gone:  # joined or left the live view
            i = bisect.bisect_left(self.live, member.name)
            if member.status.gone:
                del self.live[i]
                self.gone_names.append(member.name)
                self.gone_at.append(now)
            else:
                self.live.insert(i, member.name)
                if member.name in self.gone_names:  # back from the dead
                    j = self.gone_names.index(member.name)
                    del self.gone_names[j], self.gone_at[j]

    def reap(self, before: float) -> None:
        """Forget the members that went before ``before``."""
        j = bisect.bisect_left(self.gone_at, before)
        for name in self.gone_names[:j]:
            self.drop(name)
        del self.gone_names[:j], self.gone_at[:j]


def check_meta(meta: dict[str, Any], max_bytes: int) -> None:
    """Refuse metadata a member may not publish (it rides in every alive
    message, which must fit one datagram). Raises :class:`ConfigError`."""
    try:
        size = len(msgpack.packb(meta, use_bin_type=True))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"member metadata must be msgpack-serialisable: {exc}") from None
    if size > max_bytes:
        raise ConfigError(f"member metadata is {size} bytes; the limit is {max_bytes}")
