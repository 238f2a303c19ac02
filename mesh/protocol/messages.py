"""Every exec message, as a named record, with one codec per channel.

Two channels carry exec messages (see :mod:`mesh.protocol.paths`):

* the **client** channel between a client and its entry node:
  :class:`Submit`, :class:`Release` and :class:`Ping` up; :class:`Done`,
  :class:`Pong`, :class:`Members` and :class:`Lost` down;
* the **peer** channel between two nodes: :class:`Hold`, :class:`Want`,
  :class:`Store`, :class:`Ack`, :class:`Result`, :class:`Confirm`,
  :class:`Unsubscribe`, :class:`Need`, :class:`Steal`, :class:`Grant` and
  :class:`Recheck`.

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

__all__ = [
    "Ack", "Confirm", "Done", "Grant", "Hold", "Lost", "Members", "Need", "Ping", "Pong",
    "ProtocolViolation", "Recheck", "Release", "Result", "Steal", "Store", "Submit", "Unsubscribe",
    "Want", "decode_client", "decode_client_reply", "decode_peer", "encode",
]


class ProtocolViolation(MeshError):
    """A client or peer sent a message that breaks the protocol (unknown
    operation, wrong shape, more tasks than its credit). The channel that
    carried it is closed."""


Spec = list
"""A task spec: ``[function bytes, args kind, args payload, dependency keys,
retries]`` (indexes in :mod:`mesh.exec._records`)."""

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

    def spec(self) -> Spec:
        return [self.fn, self.akind, self.args, self.deps, self.retries]


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
    """Node ``sub`` waits for ``key``'s result."""
    key: str
    sub: str


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


# ------------------------------------------------------------------------ codec


def _str_list(v: Any) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


def _spec(v: Any) -> bool:
    return (type(v) is list and len(v) == 5 and type(v[0]) is bytes and _int(v[1])
            and type(v[2]) is bytes and _str_list(v[3]) and _retries(v[4]))


def _int(v: Any) -> bool:
    return type(v) is int


def _retries(v: Any) -> bool:
    return type(v) is int and v >= 0


def _bool(v: Any) -> bool:
    return type(v) is bool


def _str(v: Any) -> bool:
    return type(v) is str


def _bytes(v: Any) -> bool:
    return type(v) is bytes


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
}
"""How each field is checked when decoded (fields share names across messages)."""


class _Channel:
    """The encode and decode tables of one direction of one channel."""

    def __init__(self, name: str, codes: dict[str, type]) -> None:
        self.name = name
        self.decoders: dict[str, tuple[type, int, list[tuple[str, Callable[[Any], bool]]]]] = {}
        for op, cls in codes.items():
            names = [f.name for f in fields(cls)]
            self.decoders[op] = (cls, len(names) + 1, [(n, _CHECKS[n]) for n in names])
            _ENCODERS[cls] = (op, attrgetter(*names) if names else None, len(names))

    def decode(self, raw: Any) -> Any:
        if type(raw) is not list or not raw:
            raise ProtocolViolation(f"a {self.name} message must be a non-empty array, "
                                    f"not {type(raw).__name__}")
        op = raw[0]
        entry = self.decoders.get(op) if type(op) is str else None
        if entry is None:
            raise ProtocolViolation(f"unknown {self.name} operation {op!r:.40}")
        cls, size, checks = entry
        if len(raw) != size:
            raise ProtocolViolation(
                f"{self.name} message {cls.__name__} has {len(raw) - 1} fields, not {size - 1}")
        for (name, check), value in zip(checks, raw[1:], strict=True):
            if not check(value):
                raise ProtocolViolation(f"{self.name} message {cls.__name__}: bad {name} "
                                        f"({type(value).__name__} {value!r:.40})")
        return cls(*raw[1:])


_ENCODERS: dict[type, tuple[str, Callable[[Any], Any] | None, int]] = {}

CLIENT = _Channel("client", {"s": Submit, "x": Release, "p": Ping})
"""Client to entry node."""
CLIENT_REPLY = _Channel("client reply", {"d": Done, "p": Pong, "m": Members, "l": Lost})
"""Entry node to client."""
PEER = _Channel("peer", {
    "t": Hold, "w": Want, "s": Store, "a": Ack, "r": Result, "k": Confirm,
    "x": Unsubscribe, "n": Need, "st": Steal, "g": Grant, "c": Recheck,
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
