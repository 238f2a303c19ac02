"""How exec messages are checked and decoded: one check per field name, one
decoder compiled per record, one :class:`_Channel` (decode and encode
tables) per direction of a channel. The records and the channels' code
tables are in :mod:`mesh.protocol.messages`; this is the machinery under
them, kept apart so that a record's shape and its checks read separately.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from mesh.errors import MeshError

__all__ = ["MAX_REPLICAS", "ProtocolViolation"]


class ProtocolViolation(MeshError):
    """A client or peer sent a message that breaks the protocol (unknown
    operation, wrong shape, more tasks than its credit). The channel that
    carried it is closed."""


MAX_REPLICAS = 64
"""The most nodes a client may ask to keep one result (``replicas=``); a bound
on the wire like any other (a mesh with fewer nodes keeps it on all of them)."""

MAX_WORKERS = 64
"""The most node names a task may be restricted to (``workers=``)."""

MAX_NAME = 255
"""The longest node name a ``workers=`` restriction may carry."""




def _str_list(v: Any) -> bool:
    if type(v) is not list:
        return False
    for x in v:  # noqa: SIM110 - a loop, not all(...): no generator per call
        if type(x) is not str:
            return False
    return True


def _spec(v: Any) -> bool:
    return (type(v) is list and len(v) == 7 and type(v[0]) is bytes and _int(v[1])
            and type(v[2]) is bytes and _str_list(v[3]) and _retries(v[4])
            and _replicas(v[5]) and _workers(v[6]))


def _workers(v: Any) -> bool:
    if type(v) is not list or len(v) > MAX_WORKERS:
        return False
    for x in v:  # noqa: SIM110 - a loop, not all(...): no generator per call
        if type(x) is not str or not 0 < len(x) <= MAX_NAME:
            return False
    return True


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
    "lows": _applied, "workers": _workers, "located": _str_list, "error": _str,
}
"""How each field is checked when decoded (fields share names across messages)."""

_INLINE = {_str: "type({v}) is str", _bytes: "type({v}) is bytes", _int: "type({v}) is int",
           _bool: "type({v}) is bool", _retries: "type({v}) is int and {v} >= 0",
           _str_list: "type({v}) is list and (not {v} or _str_list({v}))",
           _spec: "_spec({v})"}
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
"""Each record's code, field getter and field count (filled by every :class:`_Channel`)."""
