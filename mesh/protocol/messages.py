"""Every exec message, as a named record, with one codec per channel.

Two channels carry exec messages (see :mod:`mesh.protocol.paths`):

* the **client** channel between a client and its entry node:
  :class:`Submit`, :class:`Release`, :class:`Fetch` and :class:`Ping` up (and
  :class:`Scatter`, only inside a value's offer); :class:`Done`,
  :class:`Pong`, :class:`Members`, :class:`Lost` and :class:`Scattered` down;
* the **peer** channel between two nodes: :class:`Hold`, :class:`Want`,
  :class:`Store`, :class:`Ack`, :class:`Result`, :class:`Confirm`,
  :class:`Unsubscribe`, :class:`Need`, :class:`Steal`, :class:`Grant`,
  :class:`Recheck`, :class:`Keep` and :class:`Located`.

Actor records ride on the same two channels (:mod:`mesh.actors`):
:class:`ActorOpen`, :class:`ActorCall`, :class:`ActorFind`,
:class:`ActorClose`, :class:`ActorPublish` and :class:`KeyFind` from a
client (answered by :class:`Done`);
:class:`ActorRelay`, :class:`ActorReply`, :class:`ActorState`,
:class:`ActorAck` and :class:`ActorDrop` between peers.

On the wire a message is a msgpack array whose first item is its operation
code, then its fields in declaration order. Codes are append-only: a code
never changes meaning, and the two channels have separate tables, so the same
code may name different messages on each (``"s"`` is :class:`Submit` from a
client and :class:`Store` between peers).

:func:`decode_client`, :func:`decode_client_reply` and :func:`decode_peer`
check every field's type and raise :class:`ProtocolViolation` naming what was
wrong; no other exception escapes them, whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mesh.protocol._actor_messages import (
    ActorAck,
    ActorCall,
    ActorClose,
    ActorDrop,
    ActorFind,
    ActorOpen,
    ActorPublish,
    ActorPull,
    ActorRelay,
    ActorReply,
    ActorState,
    KeyFind,
)
from mesh.protocol._decode import (
    _ENCODERS,
    MAX_NAME,
    MAX_REPLICAS,
    MAX_WORKERS,
    ProtocolViolation,
    _Channel,
)

__all__ = [
    "MAX_NAME", "MAX_REPLICAS", "MAX_WORKERS", "Ack", "ActorAck", "ActorCall", "ActorClose",
    "ActorDrop", "ActorFind", "ActorOpen", "ActorPublish", "ActorPull", "ActorRelay",
    "ActorReply", "ActorState", "Confirm", "Done", "Fetch", "Grant", "Hold", "Keep", "KeyFind",
    "Located", "Lost", "Members", "Need", "Ping", "Pong", "ProtocolViolation", "Recheck",
    "Release", "Result", "Scatter", "Scattered", "Steal", "Store", "Submit", "Unsubscribe",
    "Want", "decode_client", "decode_client_reply", "decode_peer", "decode_upload", "encode",
]


Spec = list
"""A task spec: ``[function bytes, args kind, args payload, dependency keys,
retries, replicas, workers]`` (indexes in :mod:`mesh.exec._records`)."""

_record = dataclass(frozen=True, slots=True)

# ---------------------------------------------------------------- client channel


@_record
class Submit:
    """Client to entry node: run ``key`` (once per session)."""
    key: str
    fn: bytes
    akind: int
    args: bytes
    deps: list[str]
    retries: int
    replicas: int = 0
    """Nodes that keep the result; 0: the entry node's ``--replicas``."""
    workers: list[str] = field(default_factory=list)
    """Node names the task may run on; empty: any node."""

    def spec(self) -> Spec:
        return [self.fn, self.akind, self.args, self.deps, self.retries, self.replicas,
                self.workers]


@_record
class Release:
    """Client to entry node: the client no longer holds ``key``."""
    key: str


@_record
class Fetch:
    """Client to entry node: send the value of ``key``, a held key whose
    result came as ``REMOTE`` (answered by :class:`Done` with the value)."""
    key: str


@_record
class Ping:
    """Client to entry node: are you there? (answered by :class:`Pong`)."""


@_record
class Done:
    """Entry node to client: ``key`` finished with result ``kind``/``payload``."""
    key: str
    kind: int
    payload: bytes


@_record
class Pong:
    """Entry node to client: the answer to :class:`Ping`."""


@_record
class Members:
    """Entry node to client: the alive members' addresses (``HOST:PORT``)."""
    addresses: list[str]


@_record
class Scattered:
    """Entry node to client: the value the client uploaded for ``key``
    (:class:`Scatter`) is kept on its nodes (``error`` empty), or was refused
    (``error`` says why: too large for the node, out of storage, ...)."""
    key: str
    error: str


@_record
class Lost:
    """Entry node to client: every copy of ``key``'s delivered result is lost
    and a task needs it; submit it again (the node keeps no spec once a
    result is delivered)."""
    key: str


@_record
class Scatter:
    """Client to entry node, only inside a transfer offer
    (:mod:`mesh.store._channel`): keep ``payload`` (a
    :class:`~mesh.store.Value` that arrives in chunks) as the result of
    ``key`` on ``replicas`` nodes (0: the node's ``--replicas``); answered by
    :class:`Scattered` (:mod:`mesh.exec._scatter`)."""
    key: str
    payload: bytes
    replicas: int = 0


# ------------------------------------------------------------------ peer channel


@_record
class Hold:
    """Hold (and, as its owner, run) task ``key``; notify ``subs``. ``sent_to``
    is every node the sender sent it to."""
    key: str
    spec: Spec
    subs: list[str]
    sent_to: list[str]
    located: list[str] = field(default_factory=list)
    """The subscribers that want only the location of a large result
    (answered by :class:`Located`, as a locating :class:`Want` is)."""


@_record
class Want:
    """Node ``sub`` waits for ``key``'s result; with ``locate``, a result of
    at least the locality threshold is answered by :class:`Located`."""
    key: str
    sub: str
    locate: bool = False


@_record
class Store:
    """Keep this result of ``key``; acknowledge to ``coord``."""
    key: str
    kind: int
    payload: bytes
    targets: list[str]
    subs: list[str]
    coord: str
    confirmed: bool
    replicas: int = 0
    """The key's replica count (its spec's), so holders rebalance it right."""


@_record
class Ack:
    """``holder`` stored ``key``'s result."""
    key: str
    holder: str


@_record
class Result:
    """A confirmed result of ``key``, for a subscriber."""
    key: str
    kind: int
    payload: bytes


@_record
class Confirm:
    """Every alive target holds ``key``'s result: it may be delivered."""
    key: str


@_record
class Unsubscribe:
    """Node ``sub`` no longer needs ``key``."""
    key: str
    sub: str


@_record
class Need:
    """Nobody answers for ``key``: submit it again if you hold its spec."""
    key: str


@_record
class Recheck:
    """``holder`` keeps ``keys`` for you: answer :class:`Unsubscribe` for each
    you no longer need (a release that never reached ``holder``)."""
    keys: list[str]
    holder: str


@_record
class Steal:
    """Idle node ``thief`` asks for up to ``n`` queued tasks."""
    n: int
    thief: str


@_record
class Grant:
    """A queued task given to an idle node, with the dependency values it has."""
    key: str
    spec: Spec
    subs: list[str]
    depvals: dict[str, list]
    located: list[str] = field(default_factory=list)
    """The subscribers that want only the location of a large result."""


@_record
class Keep:
    """Keep the spec of ``key``, whose result is stored on fewer nodes than
    hold its spec (lineage): run it again only if every copy is lost.
    Acknowledged to ``coord`` with :class:`Ack`."""
    key: str
    spec: Spec
    subs: list[str]
    coord: str


@_record
class Located:
    """``holder`` holds ``key``'s confirmed result of ``nbytes`` bytes (the
    answer to a locating :class:`Want`: its owner may run the dependent task
    there rather than fetch the value)."""
    key: str
    kind: int
    nbytes: int
    holder: str


CLIENT = _Channel("client", {"s": Submit, "x": Release, "p": Ping,
                             "ao": ActorOpen, "ac": ActorCall, "af": ActorFind,
                             "az": ActorClose, "av": ActorPublish, "kf": KeyFind, "f": Fetch})
"""Client to entry node."""
CLIENT_REPLY = _Channel("client reply", {"d": Done, "p": Pong, "m": Members, "l": Lost,
                                         "sd": Scattered})
"""Entry node to client."""
PEER = _Channel("peer", {
    "t": Hold, "w": Want, "s": Store, "a": Ack, "r": Result, "k": Confirm,
    "x": Unsubscribe, "n": Need, "st": Steal, "g": Grant, "kp": Keep, "lo": Located,
    "ar": ActorRelay, "ad": ActorReply, "as": ActorState, "aa": ActorAck, "az": ActorDrop,
    "ap": ActorPull, "c": Recheck,
})
"""Node to node."""
UPLOAD = _Channel("client upload", {"sc": Scatter})
"""The messages a client offers with a value (client to entry node)."""

decode_client = CLIENT.decode
decode_client_reply = CLIENT_REPLY.decode
decode_peer = PEER.decode
decode_upload = UPLOAD.decode


def encode(msg: Any) -> list:
    """The wire form of any exec message: ``[code, field, ...]``."""
    op, get, n = _ENCODERS[type(msg)]
    if n == 0:
        return [op]
    if n == 1:
        return [op, get(msg)]  # type: ignore[misc]
    return [op, *get(msg)]  # type: ignore[misc]
