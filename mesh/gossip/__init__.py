"""Membership and failure detection: SWIM with Lifeguard's refinements.

The protocol lives in :class:`Membership`, a sans-IO state machine; the
:class:`GossipDriver` runs it on a :class:`~mesh.runtime.Runtime`.
"""

from mesh.gossip._driver import PUSH_PULL_PATH, GossipDriver
from mesh.gossip._events import EventKind, MemberEvent, PushPull, Send
from mesh.gossip._membership import Membership
from mesh.gossip._state import Member, Status, merge, precedence, supersedes

__all__ = [
    "PUSH_PULL_PATH",
    "EventKind",
    "GossipDriver",
    "Member",
    "MemberEvent",
    "Membership",
    "PushPull",
    "Send",
    "Status",
    "merge",
    "precedence",
    "supersedes",
]
