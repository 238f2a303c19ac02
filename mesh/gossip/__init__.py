"""Membership and failure detection: SWIM with Lifeguard's refinements.

The protocol lives in :class:`Membership`, a sans-IO state machine; the
:class:`GossipDriver` runs it on a :class:`~mesh.runtime.Runtime`.

Protocol, per SWIM (Das et al. 2002) with Lifeguard (Dadgar et al. 2018):

* Every ``probe_interval`` (stretched by local health) probe the next member of
  a shuffled round-robin order. No ack within ``probe_timeout``: ask
  ``indirect_checks`` peers to probe it; they forward the ack or send a nack.
  No ack by the end of the interval: suspect it (:mod:`._probe`).
* A suspicion becomes ``dead`` when its timeout runs out; the timeout shrinks as
  other members confirm the suspicion (:mod:`._suspicion`). A member that hears
  it is suspected refutes by raising its incarnation.
* Updates ride on every packet (piggyback) and on gossip rounds, each sent
  ``retransmit_limit(N)`` times (:mod:`._broadcast`).
* When probing a suspect, the suspicion goes in the same packet (buddy system),
  so the suspect learns of it at once and can refute.
* Periodically exchange the whole table with one peer (push-pull), which the
  driver carries over HTTP; joining is a push-pull with a seed.

Beyond SWIM and memberlist, each rule found by the simulator's campaigns
(``docs/sim.md``): a peer that relays an accusation older than what we hold
is answered directly, with the newer alive, or with the death of a member we
hold dead; a suspicion heard from others, or newly confirmed, is told to the
suspect directly; and a confirmation never leaves the suspect less than
``probe_timeout`` to answer.
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
