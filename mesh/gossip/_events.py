"""What the membership state machine hands back to its driver.

Effects (:class:`Send`, :class:`PushPull`) say what to do on the network;
events (:class:`MemberEvent`) say what changed, for the layers above.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mesh.gossip._state import Address, Member


@dataclass(frozen=True, slots=True)
class Send:
    """Send one datagram. ``body`` is the msgpack body of a compound message;
    the driver seals it (MAC, version) before it goes out."""

    addr: Address
    body: bytes


@dataclass(frozen=True, slots=True)
class PushPull:
    """Exchange full state with the member at ``addr`` (over HTTP), then feed
    its answer to :meth:`Membership.merge_remote`, with ``bootstrap=join``.
    ``join`` marks exchanges that are part of joining (a fresh node's early
    syncs): what the answer teaches us is news to us only."""

    addr: Address
    join: bool = False


class EventKind(enum.Enum):
    """Why a member event was raised."""

    JOIN = "join"
    """A member appeared, or came back after being dead or left."""
    UPDATE = "update"
    """A member's address or metadata changed, or it refuted a suspicion."""
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: EventKind
    member: Member
    merged: bool = field(default=False, compare=False)
    """Raised by a push-pull merge, which logs one line for all its events
    (``Membership.drain_merges``), so listeners need not log each."""
