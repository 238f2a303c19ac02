"""Copies of an actor's state on its holders, and its end, sans-IO.

* **Replicas** (:func:`on_state`, a part of :class:`mesh.actors._host.Host`):
  keep the newest copy the host sends (:class:`ActorState`, whole or a
  delta), acknowledge it, and step down as host for a newer one.
* **Closing** (:func:`close`, :func:`on_drop`): a closed actor leaves a
  tombstone on the nodes that held it (the last :data:`CLOSED`), so calls
  to it fail with ``ActorLost`` at once and an open under the same name
  makes it again; :func:`expire` answers a record no node can serve.
"""

from __future__ import annotations

import logging
from typing import Any

from mesh.actors._records import Copy
from mesh.errors import ActorLost
from mesh.protocol import payload as P
from mesh.protocol.messages import (
    ActorAck,
    ActorClose,
    ActorDrop,
    ActorFind,
    ActorReply,
    ActorState,
)

__all__ = ["CLOSED", "close", "expire", "on_drop", "on_state", "tombstone"]

log = logging.getLogger("mesh.actors")

CLOSED = 4096
"""Closed actors a node remembers, so calls to them fail at once."""


def on_state(host: Any, msg: ActorState) -> None:
    """Keep a newer copy; acknowledge the version we hold. Promise: after
    this node sent its copy to a node taking the actor up (``ActorPull``), it
    keeps and acknowledges no version of that copy's term or older from
    another host, until the new term arrives, the puller leaves the view, or
    ``actor_grace`` passed, so the old host cannot answer calls the new one
    will not have."""
    promise = host.promised.get(msg.actor)
    if promise is not None:
        sub, term, until = promise
        if msg.term > term or host.x.now >= until or sub not in host.x.alive():
            del host.promised[msg.actor]
        elif msg.host != sub:
            return  # an older host's news, after we sent our copy to its successor
    version = (msg.term, msg.n)
    h = host.hosted.get(msg.actor)
    if h is not None:
        if version <= h.copy.version or msg.host == host.x.name:
            return  # an older host's news
        # A newer term, or our term with more progress (two nodes took the
        # actor up at once while cut off): theirs wins.
        host.x.metrics.inc("actor_host_stepped_down")
        log.info("%s hands actor %s at %s to %s at %s", host.x.name, msg.actor,
                 h.copy.version, msg.host, version)
        copy = h.copy
        left = host.drop(msg.actor)  # another node took the actor over: its calls go there
        host.x.relay_again(copy, left, h.opens)
    copy = host.copies.get(msg.actor)
    if msg.full and (copy is None or version > copy.version):
        answers: dict[str, dict[int, tuple[int, bytes]]] = {}
        for caller, seq, kind, payload in msg.answers:
            answers.setdefault(caller, {})[seq] = (kind, payload)
        copy = host.copies[msg.actor] = Copy(
            msg.actor, msg.fn, msg.akind, msg.args, msg.durable, msg.replicas,
            msg.term, msg.n, msg.state, dict(msg.applied), answers)
    elif (not msg.full and copy is not None and copy.term == msg.term
            and copy.n + 1 == msg.n):  # the next version: add its answers
        copy.n, copy.state, copy.applied = msg.n, msg.state, dict(msg.applied)
        for caller, seq, kind, payload in msg.answers:
            copy.answers.setdefault(caller, {})[seq] = (kind, payload)
        for caller, low in msg.lows.items():
            got = copy.answers.get(caller)
            if got:
                for s in [s for s in got if s < low]:
                    del got[s]
    if copy is None:
        return  # a delta we cannot place: the host sends the whole copy again
    if copy.version > version and msg.host != host.x.name:
        host.x.send(msg.host, host.state_msg(copy))  # a host behind us: show it ours
        host.x._pulled(msg.actor, msg.host)
        return
    if copy.version == version and msg.host != host.x.name:
        host.x.send(msg.host, ActorAck(msg.actor, msg.term, msg.n, host.x.name))
    host.x._pulled(msg.actor, msg.host)  # an answer to our pull, if we asked
    host.x.known(msg.actor)


def close(core: Any, h: Any, entry: str, key: str) -> None:
    """End hosted actor ``h`` (a client's close): fail its calls, drop its
    copies, answer ``key``."""
    actor = h.copy.actor
    targets = core.targets(h.copy)
    for cs in core.host.drop(actor):
        core.fail_lost(cs.entries, cs.call.key, f"actor {actor!r} was closed")
    core.placed.pop(actor, None)
    tombstone(core, actor)
    for dest in targets:
        core.send(dest, ActorDrop(actor))
    core.send(entry, ActorReply(key, *P.dumps_value(None)))


def on_drop(core: Any, msg: ActorDrop) -> None:
    """The host closed ``msg.actor``: drop what this node holds of it."""
    tombstone(core, msg.actor)
    for cs in core.host.drop(msg.actor):
        core.fail_lost(cs.entries, cs.call.key, f"actor {msg.actor!r} was closed")
    core.placed.pop(msg.actor, None)


def tombstone(core: Any, actor: str) -> None:
    closed = core.closed
    closed[actor] = None
    if len(closed) > CLOSED:
        del closed[next(iter(closed))]


def expire(core: Any, entry: str, msg: Any, why: str = "") -> None:
    """Answer a record for an actor nobody holds (or that was closed)."""
    if type(msg) is ActorClose:
        core.send(entry, ActorReply(msg.key, *P.dumps_value(None)))
        return
    if type(msg) is ActorFind:
        exc: BaseException = ValueError(
            f"no actor named {msg.actor.removeprefix('actor-')!r} on the mesh")
    else:
        exc = ActorLost(f"actor {msg.actor!r} {why}" if why else (
            f"no node holds actor {msg.actor!r}: it was closed, or every node that held "
            "it died"))
    core.send(entry, ActorReply(msg.key, *P.dumps_error(exc)))
