"""Every exec message, as a named record, with one codec per channel.

Two channels carry exec messages (see :mod:`mesh.protocol.paths`):

* the **client** channel between a client and its entry node:
  :class:`Submit`, :class:`Release` and :class:`Ping` up; :class:`Done`,
  :class:`Pong`, :class:`Members` and :class:`Lost` down;
* the **peer** channel between two nodes: :class:`Hold`, :class:`Want`,
  :class:`Store`, :class:`Ack`, :class:`Result`, :class:`Confirm`,
  :class:`Unsubscribe`, :class:`Need`, :class:`Steal`, :class:`Grant`,
  :class:`Recheck`, :class:`Keep` and :class:`Located`.

Actor records ride on the same two channels (:mod:`mesh.actors`):
:class:`ActorOpen`, :class:`ActorCall`, :class:`ActorFind` and
:class:`ActorClose` from a client (answered by :class:`Done`);
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

from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from mesh.errors import MeshError
from mesh.protocol._actor_messages import (
    ActorAck,
    ActorCall,
    ActorClose,
    ActorDrop,
    ActorFind,
    ActorOpen,
    ActorPull,
    ActorRelay,
    ActorReply,
    ActorState,
)

__all__ = [
    "MAX_REPLICAS", "Ack", "ActorAck", "ActorCall", "ActorClose", "ActorDrop", "ActorFind",
    "ActorOpen", "ActorPull", "ActorRelay", "ActorReply", "ActorState", "Confirm", "Done",
    "Grant", "Hold", "Keep", "Located", "Lost", "Members", "Need", "Ping", "Pong",
    "ProtocolViolation", "Recheck", "Release", "Result", "Steal", "Store", "Submit",
    "Unsubscribe",
    "Want", "decode_client", "decode_client_reply", "decode_peer", "encode",
]


class ProtocolViolation(MeshError):
    """A client or peer sent a message that breaks the protocol (unknown
    operation, wrong shape, more tasks than its credit). The channel that
    carried it is closed."""


Spec = list
"""A task spec: ``[function bytes, args kind, args payload, dependency keys,
retries, replicas]`` (indexes in :mod:`mesh.exec._records`)."""

MAX_REPLICAS = 64
"""The most nodes a client may ask to keep one result (``replicas=``); a bound
on the wire like any other (a mesh with fewer nodes keeps it on all of them)."""

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

    def spec(self) -> Spec:
        return [self.fn, self.akind, self.args, self.deps, self.retries, self.replicas]


@_record
class Release:
    """Client to entry node: the client no longer holds ``key``."""
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
class Lost:
    """Entry node to client: every copy of ``key``'s delivered result is lost
    and a task needs it; submit it again (the node keeps no spec once a
    result is delivered)."""
    key: str


# ------------------------------------------------------------------ peer channel


@_record
class Hold:
    """Hold (and, as its owner, run) task ``key``; notify ``subs``. ``sent_to``
    is every node the sender sent it to."""
    key: str
    spec: Spec
    subs: list[str]
    sent_to: list[str]


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


# ------------------------------------------------------------------------ codec


def _str_list(v: Any) -> bool:
    if type(v) is not list:
        return False
    for x in v:  # noqa: SIM110 - a loop, not all(...): no generator per call
        if type(x) is not str:
            return False
    return True


def _spec(v: Any) -> bool:
    return (type(v) is list and len(v) == 6 and type(v[0]) is bytes and _int(v[1])
            and type(v[2]) is bytes and _str_list(v[3]) and _retries(v[4])
            and _replicas(v[5]))


def _int(v: Any) -> bool:
    return type(v) is int


def _retries(v: Any) -> bool:
    return type(v) is int and v >= 0


def _replicas(v: Any) -> bool:
    return type(v) is int and 0 <= v <= MAX_REPLICAS


def _bool(v: Any) -> bool:
    return type(v) is bool


def _str(v: Any) -> bool:
    return type(v) is str


def _bytes(v: Any) -> bool:
    return type(v) is bytes


def _count(v: Any) -> bool:
    return type(v) is int and 0 <= v < 1 << 62


def _applied(v: Any) -> bool:
    return type(v) is dict and all(type(k) is str and _count(x) for k, x in v.items())


def _answers(v: Any) -> bool:
    return type(v) is list and all(
        type(a) is list and len(a) == 4 and type(a[0]) is str and _count(a[1])
        and type(a[2]) is int and type(a[3]) is bytes for a in v)


def _wire(v: Any) -> bool:
    return type(v) is list and bool(v) and type(v[0]) is str


def _depvals(v: Any) -> bool:
    return type(v) is dict and all(
        type(k) is str and type(x) is list and len(x) == 2 and type(x[0]) is int
        and type(x[1]) is bytes for k, x in v.items())


_CHECKS: dict[str, Callable[[Any], bool]] = {
    "key": _str, "fn": _bytes, "akind": _int, "args": _bytes, "deps": _str_list,
    "retries": _retries, "kind": _int, "payload": _bytes, "addresses": _str_list,
    "spec": _spec, "subs": _str_list, "sent_to": _str_list, "sub": _str,
    "targets": _str_list, "coord": _str, "confirmed": _bool, "holder": _str,
    "n": _int, "thief": _str, "depvals": _depvals, "keys": _str_list,
    "replicas": _replicas, "locate": _bool, "nbytes": _retries,
    "actor": _str, "durable": _bool, "caller": _str, "seq": _count,
    "low": _count, "method": _str, "entry": _str, "msg": _wire, "term": _count,
    "host": _str, "state": _bytes, "applied": _applied, "answers": _answers, "full": _bool,
    "lows": _applied,
}
"""How each field is checked when decoded (fields share names across messages)."""

_INLINE = {_str: "type({v}) is str", _bytes: "type({v}) is bytes", _int: "type({v}) is int",
           _bool: "type({v}) is bool", _retries: "type({v}) is int and {v} >= 0",
           _str_list: "type({v}) is list and (not {v} or _str_list({v}))",
           _spec: "type({v}) is list and len({v}) == 5 and _spec({v})"}
"""The checks of :data:`_CHECKS` as expressions, inlined into each record's
decoder; the others are called."""


def _compile(cls: type, names: list[str], slow: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One decoder for ``cls``: every field checked in one expression, the
    record built without ``__init__`` (each slot set once). Anything that
    fails the checks goes to ``slow``, which names the problem."""
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_slow": slow,
                           "_str_list": _str_list, "_spec": _spec}
    checks, sets = [], []
    for i, name in enumerate(names):
        check = _CHECKS[name]
        if check in _INLINE:
            checks.append("(" + _INLINE[check].format(v=f"v{i}") + ")")
        else:
            env[f"_c{i}"] = check
            checks.append(f"_c{i}(v{i})")
        env[f"_s{i}"] = cls.__dict__[name].__set__  # the slot's descriptor
        sets.append(f"    _s{i}(o, v{i})\n")
    args = ", ".join(f"v{i}" for i in range(len(names)))
    src = (f"def decode(raw):\n"
           f"    if len(raw) != {len(names) + 1}:\n        return _slow(raw)\n"
           + (f"    _, {args} = raw\n    if not ({' and '.join(checks)}):\n"
              f"        return _slow(raw)\n" if names else "")
           + "    o = _new(_cls)\n" + "".join(sets) + "    return o\n")
    exec(src, env)  # the source is built above from field names only
    return env["decode"]


class _Channel:
    """The encode and decode tables of one direction of one channel."""

    def __init__(self, name: str, codes: dict[str, type]) -> None:
        self.name = name
        self.decoders: dict[str, Callable[[Any], Any]] = {}
        for op, cls in codes.items():
            names = [f.name for f in fields(cls)]
            checks = [(n, _CHECKS[n]) for n in names]
            self.decoders[op] = _compile(cls, names, self._violation(cls, checks))
            _ENCODERS[cls] = (op, attrgetter(*names) if names else None, len(names))

    def _violation(self, cls: type, checks: list[tuple[str, Callable[[Any], bool]]]
                   ) -> Callable[[Any], Any]:
        def explain(raw: list) -> Any:
            if len(raw) != len(checks) + 1:
                raise ProtocolViolation(f"{self.name} message {cls.__name__} has "
                                        f"{len(raw) - 1} fields, not {len(checks)}")
            for (name, check), value in zip(checks, raw[1:], strict=True):
                if not check(value):
                    raise ProtocolViolation(f"{self.name} message {cls.__name__}: bad {name} "
                                            f"({type(value).__name__} {value!r:.40})")
            raise AssertionError("a record's compiled checks and its field checks disagree")
        return explain

    def decode(self, raw: Any) -> Any:
        if type(raw) is not list or not raw:
            raise ProtocolViolation(f"a {self.name} message must be a non-empty array, "
                                    f"not {type(raw).__name__}")
        op = raw[0]
        decoder = self.decoders.get(op) if type(op) is str else None
        if decoder is None:
            raise ProtocolViolation(f"unknown {self.name} operation {op!r:.40}")
        return decoder(raw)


_ENCODERS: dict[type, tuple[str, Callable[[Any], Any] | None, int]] = {}

CLIENT = _Channel("client", {"s": Submit, "x": Release, "p": Ping,
                             "ao": ActorOpen, "ac": ActorCall, "af": ActorFind,
                             "az": ActorClose})
"""Client to entry node."""
CLIENT_REPLY = _Channel("client reply", {"d": Done, "p": Pong, "m": Members, "l": Lost})
"""Entry node to client."""
PEER = _Channel("peer", {
    "t": Hold, "w": Want, "s": Store, "a": Ack, "r": Result, "k": Confirm,
    "x": Unsubscribe, "n": Need, "st": Steal, "g": Grant, "kp": Keep, "lo": Located,
    "ar": ActorRelay, "ad": ActorReply, "as": ActorState, "aa": ActorAck, "az": ActorDrop,
    "ap": ActorPull, "c": Recheck,
})
"""Node to node."""

decode_client = CLIENT.decode
decode_client_reply = CLIENT_REPLY.decode
decode_peer = PEER.decode


def encode(msg: Any) -> list:
    """The wire form of any exec message: ``[code, field, ...]``."""
    op, get, n = _ENCODERS[type(msg)]
    if n == 0:
        return [op]
    if n == 1:
        return [op, get(msg)]  # type: ignore[misc]
    return [op, *get(msg)]  # type: ignore[misc]
