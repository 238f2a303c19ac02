"""Gossip wire messages: frozen dataclasses and their msgpack list form.

A datagram body is a msgpack array of messages (a compound message); each
message is an array whose first element is its type number. Type numbers are
append-only: never reuse or renumber one, only add new ones at the end.
A receiver skips message types it does not know (a newer peer), and rejects
with :class:`WireError` anything whose known type has the wrong shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from mesh.config import DEFAULT, Config
from mesh.errors import WireError
from mesh.gossip._intern import intern_addr, intern_meta, intern_name
from mesh.gossip._state import Address, Status

if TYPE_CHECKING:
    from mesh.gossip._state import Member

PING = 1
INDIRECT_PING = 2
ACK = 3
NACK = 4
ALIVE = 5
SUSPECT = 6
DEAD = 7


@dataclass(frozen=True, slots=True)
class Ping:
    """A direct probe of ``target``; answered with an :class:`Ack` of ``seq``."""

    seq: int
    target: str


@dataclass(frozen=True, slots=True)
class IndirectPing:
    """Asks the receiver to probe ``target`` at ``target_addr`` on our behalf and
    to forward its ack (or a :class:`Nack` if none came in time)."""

    seq: int
    target: str
    target_addr: tuple[str, int]


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    """Lifeguard: an indirect prober saying it got no ack either. Tells the
    original prober that its own links work, so a missed probe is not its fault."""

    seq: int


@dataclass(frozen=True, slots=True)
class Alive:
    incarnation: int
    node: str
    addr: tuple[str, int]
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Suspect:
    incarnation: int
    node: str
    sender: str


@dataclass(frozen=True, slots=True)
class Dead:
    """``node`` is dead; when ``sender == node`` it left gracefully."""

    incarnation: int
    node: str
    sender: str


Message = Ping | IndirectPing | Ack | Nack | Alive | Suspect | Dead


def to_list(msg: Message) -> list[Any]:
    """The msgpack-ready form of one message."""
    match msg:
        case Ping(seq, target):
            return [PING, seq, target]
        case IndirectPing(seq, target, (host, port)):
            return [INDIRECT_PING, seq, target, host, port]
        case Ack(seq):
            return [ACK, seq]
        case Nack(seq):
            return [NACK, seq]
        case Alive(inc, node, (host, port), meta):
            return [ALIVE, inc, node, host, port, meta]
        case Suspect(inc, node, sender):
            return [SUSPECT, inc, node, sender]
        case Dead(inc, node, sender):
            return [DEAD, inc, node, sender]
    raise TypeError(f"not a gossip message: {msg!r}")


def encode(msg: Message) -> bytes:
    """One message as msgpack bytes (an element of a compound body)."""
    return msgpack.packb(to_list(msg), use_bin_type=True)


def compound(encoded: list[bytes]) -> bytes:
    """A msgpack array of already-encoded messages, without re-encoding them."""
    n = len(encoded)
    if n < 16:
        head = bytes([0x90 | n])
    elif n < 65536:
        head = b"\xdc" + n.to_bytes(2, "big")
    else:
        raise ValueError("too many messages for one datagram")
    return head + b"".join(encoded)


COMPOUND_HEADER_MAX = 3
"""Bytes :func:`compound` adds in front of the messages, at most."""


def _int(v: Any) -> int:
    if type(v) is not int or v < 0 or v >= 2**63:
        raise WireError("malformed", f"expected a non-negative int, got {type(v).__name__}")
    return v


def _str(v: Any) -> str:
    if type(v) is not str or not v or len(v) > 256:
        raise WireError("malformed", "expected a name of 1 to 256 characters")
    return v


def _addr(host: Any, port: Any) -> tuple[str, int]:
    if type(host) is not str or not host or len(host) > 255:
        raise WireError("malformed", "bad host")
    if type(port) is not int or not 0 < port < 65536:
        raise WireError("malformed", "bad port")
    return (host, port)


def _inc(v: Any, limits: Config) -> int:
    if type(v) is int and v > limits.max_incarnation:
        raise WireError("bounds", f"incarnation {v} above the limit {limits.max_incarnation}")
    return _int(v)


def _meta(v: Any, limits: Config = DEFAULT) -> dict[str, Any]:
    """Member metadata: a map with string keys, at most ``max_meta_bytes``
    encoded, every number within ``max_meta_int``, ``workers`` a positive
    int up to ``max_workers``."""
    if type(v) is not dict or not all(type(k) is str for k in v):
        raise WireError("malformed", "metadata must be a map with string keys")
    if not v:
        return v
    size = len(msgpack.packb(v, use_bin_type=True))
    if size > limits.max_meta_bytes:
        raise WireError("bounds", f"metadata of {size} bytes > {limits.max_meta_bytes}")
    bound = limits.max_meta_int
    for key, value in v.items():
        if type(value) in (int, float) and not -bound <= value <= bound:  # NaN fails too
            raise WireError("bounds", f"metadata number {key}={value!r} out of range")
    workers = v.get("workers")
    if workers is not None and (type(workers) is not int
                                or not 0 < workers <= limits.max_workers):
        raise WireError("bounds", f"workers={workers!r}: expected 1 to {limits.max_workers}")
    return v


def from_list(raw: Any, limits: Config = DEFAULT) -> Message | None:
    """Validate and build one message. Returns ``None`` for a type number we do
    not know (sent by a newer peer); raises :class:`WireError` otherwise
    (reason ``bounds`` for a well-formed value beyond a limit of ``limits``)."""
    if type(raw) is not list or not raw or type(raw[0]) is not int:
        raise WireError("malformed", "a message must be a non-empty array with a type")
    kind, n = raw[0], len(raw)
    try:
        if kind == PING and n == 3:
            return Ping(_int(raw[1]), _str(raw[2]))
        if kind == INDIRECT_PING and n == 5:
            return IndirectPing(_int(raw[1]), _str(raw[2]), _addr(raw[3], raw[4]))
        if kind == ACK and n == 2:
            return Ack(_int(raw[1]))
        if kind == NACK and n == 2:
            return Nack(_int(raw[1]))
        if kind == ALIVE and n == 6:
            # The fields of an alive end up in member records: share them.
            return Alive(
                _inc(raw[1], limits),
                intern_name(_str(raw[2])),
                intern_addr(_addr(raw[3], raw[4])),
                intern_meta(_meta(raw[5], limits)),
            )
        if kind == SUSPECT and n == 4:
            return Suspect(_inc(raw[1], limits), _str(raw[2]), _str(raw[3]))
        if kind == DEAD and n == 4:
            return Dead(_inc(raw[1], limits), _str(raw[2]), _str(raw[3]))
    except IndexError:  # pragma: no cover - lengths are checked above
        raise WireError("malformed", f"short message of type {kind}") from None
    if kind in (PING, INDIRECT_PING, ACK, NACK, ALIVE, SUSPECT, DEAD):
        raise WireError("malformed", f"message of type {kind} has {n} fields")
    return None


def decode_compound(
    body: Any, known: Mapping[str, Member] | None = None, me: str = "",
    limits: Config = DEFAULT,
) -> list[Message]:
    """Validate a whole datagram body (a list of messages). All or nothing: one
    bad message rejects the datagram, so a half-valid packet changes nothing.

    ``known``, if given, maps member names to what we believe of them. An
    ``alive`` about a member in it, other than ``me``, at that incarnation or
    an older one carries no news and is skipped unparsed (nothing of it is ever
    applied). In a mass join most messages are such stale rumours; the check
    is inline because it runs for each one."""
    if type(body) is not list or not body:
        raise WireError("malformed", "a datagram must be a non-empty array of messages")
    out: list[Message] = []
    get = None if known is None else known.get
    for raw in body:
        if get is not None and type(raw) is list and len(raw) == 6 and raw[0] == ALIVE:
            name, inc = raw[2], raw[1]
            if type(name) is str and type(inc) is int and name != me:
                have = get(name)
                if have is not None and have[3] >= inc:  # its incarnation
                    continue
        msg = from_list(raw, limits)
        if msg is not None:
            out.append(msg)
    return out


def check_row(
    row: Any, known: Mapping[str, Member], limits: Config = DEFAULT, me: str = ""
) -> tuple[str, Address, int, Status, dict[str, Any]] | None:
    """Validate one push-pull row. ``None`` if it says exactly what we already
    believe (same name, incarnation and status) of a member other than ``me``:
    no news, left unparsed. A row about ``me`` is always kept: at our own
    incarnation with another address or metadata, it calls for a refutation.
    Raises :class:`WireError` if it is malformed or beyond a bound."""
    if type(row) is not list or len(row) != 6:
        raise WireError("malformed", "push-pull entry must have 6 fields")
    name, host, port, inc, status, meta = row
    have = known.get(name) if type(name) is str and name != me else None
    if have is not None and have[3] == inc and have[4] == status:
        return None
    # An entry has the fields of an Alive message; reuse its validation.
    checked = from_list([ALIVE, inc, name, host, port, meta], limits)
    if not isinstance(checked, Alive):  # pragma: no cover - ALIVE is known
        raise WireError("malformed", "bad push-pull entry")
    if type(status) is not int or status not in (0, 1, 2, 3):
        raise WireError("malformed", "bad status in push-pull entry")
    return (checked.node, checked.addr, checked.incarnation, Status(status), checked.meta)


def check_table(state: Any, limits: Config = DEFAULT) -> list[Any]:
    """The shape and size of a push-pull table (its rows are checked by
    :func:`check_row`). A table of more than ``max_members`` rows is dropped
    whole (reason ``bounds``)."""
    if type(state) is not list:
        raise WireError("malformed", "push-pull state must be an array")
    if len(state) > limits.max_members:
        raise WireError("bounds", f"push-pull table of {len(state)} > {limits.max_members} rows")
    return state


def parse_state(
    state: Any, known: Mapping[str, Member], limits: Config = DEFAULT, me: str = ""
) -> list[tuple[str, Address, int, Status, dict[str, Any]]]:
    """Validate a whole push-pull table, all or nothing (:func:`check_table`,
    then :func:`check_row` for each row). Entries that say exactly what we
    already believe are skipped, which keeps a sync of a large, quiet cluster
    cheap."""
    out = []
    for row in check_table(state, limits):
        entry = check_row(row, known, limits, me)
        if entry is not None:
            out.append(entry)
    return out
