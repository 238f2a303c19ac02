"""The actor records (:mod:`mesh.actors`), carried on the exec channels.

Their codes and field checks are in :mod:`mesh.protocol.messages`, with every
other exec record's; they live here only to keep that module short.
"""

from __future__ import annotations

from dataclasses import dataclass

_record = dataclass(frozen=True, slots=True)



@_record
class ActorOpen:
    """Client to entry node: make actor ``actor`` (unless it exists) from the
    pickled class ``fn`` and its arguments; answered by :class:`Done` ``key``."""
    key: str
    actor: str
    fn: bytes
    akind: int
    args: bytes
    durable: bool
    replicas: int


@_record
class ActorCall:
    """Client to entry node: call ``method`` of ``actor``; ``caller`` and
    ``seq`` (1, 2, ...) order and deduplicate calls; the caller still waits
    for every call from ``low`` on. ``deps``: the keys of the futures among
    the arguments; the host fetches their values as a task's owner does and
    runs the call once all arrived. Answered by :class:`Done` ``key``."""
    key: str
    actor: str
    caller: str
    seq: int
    low: int
    method: str
    akind: int
    args: bytes
    durable: bool
    deps: list[str]


@_record
class ActorFind:
    """Client to entry node: where is ``actor`` (:class:`Done` ``key`` carries
    ``{"durable", "nodes"}``)?"""
    key: str
    actor: str


@_record
class ActorPublish:
    """Client to entry node: the outcome of actor call ``key`` (its future
    is an argument of a task or of another call): store it under ``key`` on
    the key's nodes, as a task's result, held by this session until it
    releases ``key``. Answered by :class:`Done` ``key`` (no value)."""
    key: str
    kind: int
    payload: bytes


@_record
class KeyFind:
    """Client to entry node: which nodes hold the result of task key
    ``actor`` (:class:`Done` ``key`` carries ``{"nodes"}``)? Relayed to the
    first node of the key's list, like an actor record."""
    key: str
    actor: str


@_record
class ActorClose:
    """Client to entry node: end ``actor`` and drop its state."""
    key: str
    actor: str


@_record
class ActorRelay:
    """Entry node ``entry`` to an actor's host: a client's actor record
    (``msg``, its wire array); the host answers with :class:`ActorReply`."""
    entry: str
    msg: list


@_record
class ActorReply:
    """An actor's host to an entry node: the outcome of call ``key``."""
    key: str
    kind: int
    payload: bytes


@_record
class ActorState:
    """An actor's host to its replicas: the state at version ``(term, n)``,
    with its constructor, the last sequence number applied per caller and the
    answers callers may still ask for again (``[caller, seq, kind, payload]``):
    all of them when ``full``, else those of version ``n`` alone (a replica
    holding ``n - 1`` adds them and drops each caller's answers below ``lows``)."""
    actor: str
    term: int
    n: int
    host: str
    fn: bytes
    akind: int
    args: bytes
    durable: bool
    replicas: int
    state: bytes
    applied: dict[str, int]
    answers: list
    full: bool
    lows: dict[str, int]


@_record
class ActorAck:
    """``holder`` keeps ``actor``'s state at version ``(term, n)``."""
    actor: str
    term: int
    n: int
    holder: str


@_record
class ActorDrop:
    """``actor`` was closed: drop its state."""
    actor: str


@_record
class ActorPull:
    """Node ``sub`` hosts ``actor`` now and holds no copy (it restarted, or
    its copy is on its way): send it yours."""
    actor: str
    sub: str
