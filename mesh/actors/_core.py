"""The actor layer of one node as a sans-IO state machine.

:class:`ActorCore` rides on the exec core's :class:`~mesh.exec._table.Table`:
its messages go out with the exec layer's (the same peer and client
channels), and it reads the same view (``table.ring``). Inputs: client actor
records (this node is their entry), peer actor records, worker events, view
changes and ticks, each with ``now``; outputs: messages (through the table)
and worker effects (:attr:`ActorCore.work`, drained by :meth:`take_work`).

Entry role: :mod:`mesh.actors._entry`; host and replica roles:
:mod:`mesh.actors._host`; here: routing, taking actors up, view changes.
"""

from __future__ import annotations

import logging
from typing import Any

from mesh.actors import _copies
from mesh.actors._entry import Entry
from mesh.actors._host import Host, Hosted
from mesh.actors._records import QUEUED, Copy, WorkerEffect, WorkerEvent, move
from mesh.actors._records import Call as CallRec
from mesh.actors._records import Crashed as CrashedEv
from mesh.actors._records import Ran as RanEv
from mesh.actors._records import Started as StartedEv
from mesh.actors._values import Values
from mesh.config import DEFAULT
from mesh.errors import ActorLost
from mesh.exec._table import Table
from mesh.protocol import payload as P
from mesh.protocol.messages import (
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
    ProtocolViolation,
    decode_client,
    encode,
)

__all__ = ["ActorCore"]

log = logging.getLogger("mesh.actors")

CLIENT_RECORDS = (ActorOpen, ActorCall, ActorFind, ActorClose, ActorPublish, KeyFind)


class ActorCore:
    """Entry, host and replica of actors on one node."""

    def __init__(self, table: Table, *, batch: int = DEFAULT.actor_batch,
                 grace: float = DEFAULT.actor_grace, resend: float = DEFAULT.actor_resend,
                 max_payload: int = DEFAULT.max_http_body // 2,
                 max_crashes: int = DEFAULT.max_task_crashes, exec_core: Any = None) -> None:
        """``exec_core``: the node's :class:`~mesh.exec.ExecCore` (whose
        ``table`` this is), to fetch and store values by key."""
        self.t = table
        self.batch = batch
        self.grace = grace
        self.resend = resend
        self.max_payload = max_payload
        self.max_crashes = max_crashes
        self.max_unconfirmed = 2  # batches a host runs ahead of its replicas' acks
        self.now = 0.0
        self.parked: dict[str, list[tuple[str, Any, float]]] = {}
        self.placed: dict[str, tuple[str, ...]] = {}
        self.host = Host(self)
        self.entry = Entry(self)
        self.values = Values(self, exec_core)
        self.wake: Any = None
        """Called when a value woke calls outside the core's own inputs."""
        self.pulling: dict[str, tuple[float, set[str]]] = {}
        """Actors this node hosts now and collects copies of before it takes them up."""
        self.closed: dict[str, None] = {}
        """Actors closed here, newest last (at most ``_copies.CLOSED``): calls fail at once."""
        self.pulled: set[str] = set()
        """Actors whose pull found no copy anywhere."""
        self._ring = table.ring
        self.address = ""
        """Where clients reach this node (its member address): told with the
        answers of actor opens and finds, so calls come here straight."""

    # ----------------------------------------------------------- the context
    @property
    def name(self) -> str:
        return self.t.name

    @property
    def metrics(self) -> Any:
        return self.t.metrics

    def send(self, dest: str, msg: object) -> None:
        self.t.send(dest, msg)

    def alive(self) -> frozenset[str]:
        return self.t.ring.names

    def pref(self, actor: str, n: int) -> tuple[str, ...]:
        ring = self.t.ring
        if not ring.names:
            return ()
        n = max(1, min(n, len(ring.names)))
        if n == ring.replicas:
            return ring.pref(actor)
        return tuple(ring._placement.preference_list(actor, n))

    def here(self) -> tuple[int, bytes]:
        """The answer of an open: this node hosts the actor, at this address."""
        return P.dumps_value({"host": self.name, "address": self.address})

    def host_of(self, actor: str) -> str | None:
        pref = self.t.ring.pref(actor)
        return pref[0] if pref else None

    def targets(self, copy: Copy) -> tuple[str, ...]:
        return tuple(n for n in self.pref(copy.actor, copy.replicas) if n != self.name)

    def fail_lost(self, entries: set[str], key: str, message: str) -> None:
        kind, payload = P.dumps_error(ActorLost(message))
        for entry in sorted(entries):
            self.send(entry, ActorReply(key, kind, payload))

    def client_message(self, sid: int, msg: Any, raw: list) -> None:
        """An actor record from a client session of this node (its entry)."""
        if type(msg) is ActorPublish:
            self.values.publish(sid, msg)
        else:
            self.entry.client_message(sid, msg, raw)

    def woken(self) -> None:
        if self.wake is not None and self.host.work:
            self.wake()

    def take_work(self) -> list[WorkerEffect]:
        work, self.host.work = self.host.work, []
        return work

    # ------------------------------------------------------------- host role
    def on_relay(self, msg: ActorRelay) -> None:
        inner = decode_client(msg.msg)
        if type(inner) not in CLIENT_RECORDS or type(inner) is ActorPublish:
            raise ProtocolViolation(f"an actor relay carries {type(inner).__name__}")
        if type(inner) is KeyFind:
            self.values.key_find(msg.entry, inner)
            return
        durable = type(inner) is not ActorCall or inner.durable
        # A durable actor's state may be cut off by a partition: wait longer for it.
        self._serve(msg.entry, inner, self.now + self.grace * (10 if durable else 1))

    def _serve(self, entry: str, msg: Any, deadline: float) -> None:
        actor = msg.actor
        if actor in self.closed:
            if type(msg) is not ActorOpen:
                _copies.expire(self, entry, msg, "was closed")
                return
            del self.closed[actor]  # made again under the same name
        h = self._owned(actor)
        if h is None:
            if self.host_of(actor) != self.name or actor in self.pulling:
                self.parked.setdefault(actor, []).append((entry, msg, deadline))
                return
            # Ours, and no node has a copy (the pull found none): a new actor.
            if type(msg) is ActorOpen:
                copy = Copy(actor, msg.fn, msg.akind, msg.args, msg.durable,
                            msg.replicas or self.t.replicas)
                h = self.host.host(copy, fresh=True)
                self.pulled.discard(actor)
                self.placed[actor] = self.pref(actor, copy.replicas)
                h.opens.append((entry, msg.key))
            elif type(msg) is ActorClose:
                self.send(entry, ActorReply(msg.key, *P.dumps_value(None)))
            else:
                self.parked.setdefault(actor, []).append((entry, msg, deadline))
            return
        if type(msg) is ActorCall:
            call = CallRec(msg.key, msg.caller, msg.seq, msg.method, msg.akind, msg.args,
                           tuple(msg.deps))
            self.host.accept(h, call, msg.low, entry)
        elif type(msg) is ActorOpen:
            self.host.open_done(h, entry, msg.key)
        elif type(msg) is ActorFind:
            nodes = [self.name, *self.targets(h.copy)]
            info = {"durable": h.copy.durable, "nodes": nodes, "replicas": h.copy.replicas,
                    "host": self.name, "address": self.address}
            self.send(entry, ActorReply(msg.key, *P.dumps_value(info)))
        else:
            _copies.close(self, h, entry, msg.key)

    def _owned(self, actor: str) -> Hosted | None:
        """The actor if this node hosts it. If this node is its host now and
        does not host it, it first asks the other holders for their copies
        (its own may be behind theirs) and takes it up from the newest once
        all answered (:meth:`_pulled`)."""
        h = self.host.hosted.get(actor)
        if h is not None:
            return None if h.leaving else h
        if self.host_of(actor) != self.name or actor in self.pulling:
            return None
        if actor not in self.pulled:
            others = {d for d in self.pref(actor, self.t.replicas + 2) if d != self.name}
            others.update(d for d in self.placed.get(actor, ()) if d in self.alive())
            others.discard(self.name)
            if others:
                self.pulling[actor] = (self.now + self.grace, others)
                for dest in sorted(others):
                    self.send(dest, ActorPull(actor, self.name))
                return None
        copy = self.host.copies.get(actor)
        if copy is None:
            return None
        self.pulled.discard(actor)
        self.placed[actor] = self.pref(actor, copy.replicas)
        return self.host.host(copy, fresh=False)

    def _pulled(self, actor: str, holder: str | None) -> None:
        """``holder`` answered our pull (None: the wait ran out)."""
        got = self.pulling.get(actor)
        if got is None:
            return
        if holder is not None:
            got[1].discard(holder)
            if got[1]:
                return
        del self.pulling[actor]
        self.pulled.add(actor)
        self.known(actor)

    def on_pull(self, msg: ActorPull) -> None:
        h = self.host.hosted.get(msg.actor)
        copy = h.copy if h is not None else self.host.copies.get(msg.actor)
        if msg.sub == self.name:
            return
        if copy is not None:  # promised: no older host's version is acknowledged here
            self.host.promised[msg.actor] = (msg.sub, copy.term, self.now + self.grace)
            self.send(msg.sub, self.host.state_msg(copy))
        else:  # "none here": an acknowledgement of version (0, 0)
            self.send(msg.sub, ActorAck(msg.actor, 0, 0, self.name))

    def on_ack(self, msg: ActorAck) -> None:
        if msg.term == 0:
            self._pulled(msg.actor, msg.holder)
        else:
            self.host.on_ack(msg)

    def known(self, actor: str) -> None:
        """A copy of ``actor`` arrived: serve what waited for it."""
        if actor not in self.placed:
            copy = self.host.copies.get(actor)
            if copy is not None:
                self.placed[actor] = self.pref(actor, copy.replicas)
        waiting = self.parked.pop(actor, None)
        for entry, msg, deadline in waiting or ():
            self._serve(entry, msg, deadline)

    def hand_over(self, h: Hosted) -> None:
        """Placement moved a hosted actor: give its state and its calls to
        the new host, then keep a replica if this node still holds one."""
        copy = h.copy
        actor = copy.actor
        pref = self.pref(actor, copy.replicas)
        msg = self.host.state_msg(copy)
        for dest in pref:
            if dest != self.name:
                self.send(dest, msg)
        log.info("%s hands actor %s at %s over to %s", self.name, actor, copy.version, pref)
        self.relay_again(copy, self.host.drop(actor), h.opens)
        if self.name in pref:
            self.host.copies[actor] = copy
        else:
            self.placed.pop(actor, None)
        self.metrics.inc("actor_handovers")

    def relay_again(self, copy: Copy, left: list, opens: list[tuple[str, str]]) -> None:
        """Send calls (and opens) this node no longer hosts to the actor's host."""
        actor = copy.actor
        host = self.host_of(actor)
        if host is None:
            return
        for cs in sorted(left, key=lambda c: (c.call.caller, c.call.seq)):
            if cs.state == QUEUED:
                move(cs, "hand_over")
            c = cs.call
            raw = encode(ActorCall(c.key, actor, c.caller, c.seq, 0, c.method, c.akind, c.args,
                                   copy.durable, list(c.deps)))
            for entry in sorted(cs.entries):
                self.send(host, ActorRelay(entry, raw))
        for entry, key in opens:
            raw = encode(ActorOpen(key, actor, copy.fn, copy.akind, copy.args, copy.durable,
                                   copy.replicas))
            self.send(host, ActorRelay(entry, raw))

    # ------------------------------------------------------ peer and worker
    def on_drop(self, msg: ActorDrop) -> None:
        _copies.on_drop(self, msg)

    def peer_handlers(self) -> dict[type, Any]:
        return {ActorRelay: self.on_relay, ActorReply: self.entry.on_reply,
                ActorState: self.host.on_state, ActorAck: self.on_ack,
                ActorDrop: self.on_drop, ActorPull: self.on_pull}

    def worker_event(self, ev: WorkerEvent) -> None:
        h = self.host.hosted.get(ev.actor)
        if h is None or h.gen != ev.gen:
            return
        if type(ev) is StartedEv:
            self.host.started(h, ev.kind, ev.payload, ev.state)
        elif type(ev) is RanEv:
            self.host.ran(h, ev.results, ev.state, ev.reply, ev.quiet)
        elif type(ev) is CrashedEv:
            self.host.crashed(h)

    # ------------------------------------------------------------ view, time
    def view_changed(self, now: float) -> None:
        """The exec core's view changed: move hosts, copies and relays."""
        self.now = now
        self.entry.view_changed()
        self.pulled.clear()  # a new view: ask the holders again before taking an actor up
        for actor, h in list(self.host.hosted.items()):
            pref = self.pref(actor, h.copy.replicas)
            old = self.placed.get(actor, ())
            self.placed[actor] = pref
            if pref and pref[0] != self.name:
                h.leaving = True
                if h.running is None:
                    self.hand_over(h)
                continue
            fresh = [d for d in pref if d not in old and d != self.name]
            if fresh and h.up:
                msg = self.host.state_msg(h.copy)
                for dest in fresh:
                    self.send(dest, msg)
            self.host.check(h)
        for actor, copy in list(self.host.copies.items()):
            pref = self.pref(actor, copy.replicas)
            old = self.placed.get(actor, ())
            self.placed[actor] = pref
            if pref and pref[0] == self.name:
                self._owned(actor)
                continue
            msg = self.host.state_msg(copy)
            for dest in pref:
                if dest not in old and dest != self.name:
                    self.send(dest, msg)
            if self.name not in pref:
                del self.host.copies[actor]
                self.placed.pop(actor, None)
        for actor in list(self.parked):
            self.known(actor)
        self._ring = self.t.ring

    def tick(self, now: float) -> None:
        self.now = now
        if self.t.ring is not self._ring:
            self.view_changed(now)
        self.entry.tick(now)
        alive = self.alive()
        for actor, (deadline, waiting) in list(self.pulling.items()):
            if now < deadline:
                continue
            waiting &= alive  # a holder that died answers nothing; one alive must
            if not waiting:
                self._pulled(actor, None)
                continue
            self.pulling[actor] = (now + self.grace, waiting)
            for dest in sorted(waiting):
                self.send(dest, ActorPull(actor, self.name))
        for actor in [a for a in self.host.copies if a not in self.host.hosted]:
            self._owned(actor)  # ours with no call yet (a quick restart changes no view)
        for actor, waiting in list(self.parked.items()):
            host = self.host_of(actor)
            if host is not None and host != self.name:  # not ours: to our view's host,
                del self.parked[actor]  # at most once a tick (views may disagree)
                for entry, msg, _deadline in waiting:
                    self.send(host, ActorRelay(entry, encode(msg)))
                continue
            self.pulled.discard(actor)  # calls wait for it: ask the holders again
            if self._owned(actor) is not None:
                self.known(actor)
                continue
            keep = []
            for entry, msg, deadline in self.parked.pop(actor, []):
                if now < deadline:
                    keep.append((entry, msg, deadline))
                else:
                    _copies.expire(self, entry, msg)
            if keep:
                self.parked.setdefault(actor, []).extend(keep)
        self.host.resend()
        self.values.tick(now)
