"""Hosting actors, sans-IO: a component of :class:`mesh.actors._core.ActorCore`.
An actor's host is the first node of its key's preference list; the next
``replicas - 1`` hold :class:`~mesh.actors._records.Copy` replicas of its
state (:mod:`mesh.actors._copies`).

* Calls of one caller are applied in sequence order, each exactly once: one
  whose number was applied is answered from the record (:attr:`Copy.answers`);
  one that arrives early waits for the gap. One that waits for its
  arguments' values (:mod:`mesh.actors._values`) holds back its caller's
  later calls (:attr:`Hosted.blocked`), not other callers'.
* Queued calls go to the worker in batches, one run at a time (async calls
  may stay in flight past it). A durable actor's state, at a quiet point,
  goes with the record to the replicas (:class:`ActorState`); its calls are
  answered once every alive target acknowledged. A volatile actor's calls
  are answered at once; its replicas keep only the constructor.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from mesh.actors._copies import on_state
from mesh.actors._records import (
    APPLIED,
    QUEUED,
    RUNNING,
    Call,
    CallState,
    Copy,
    Kill,
    Run,
    Spawn,
    WorkerEffect,
    move,
)
from mesh.protocol import payload as P
from mesh.protocol.messages import ActorAck, ActorReply, ActorState

log = logging.getLogger("mesh.actors")


@dataclass(slots=True, eq=False)
class Batch:
    """A version waiting for its replicas' acknowledgements."""
    n: int
    calls: list[CallState]
    targets: set[str]
    opens: list[tuple[str, str]] = field(default_factory=list)
    replies: list[tuple[str, str, int, bytes]] = field(default_factory=list)
    acks: set[str] = field(default_factory=set)


@dataclass(slots=True, eq=False)
class Hosted:
    """An actor this node hosts."""
    copy: Copy
    gen: int
    up: bool = False
    queue: deque[CallState] = field(default_factory=deque)
    calls: dict[tuple[str, int], CallState] = field(default_factory=dict)
    next_seq: dict[str, int] = field(default_factory=dict)
    early: dict[str, dict[int, CallState]] = field(default_factory=dict)
    running: list[CallState] | None = None
    unconfirmed: deque[Batch] = field(default_factory=deque)
    opens: list[tuple[str, str]] = field(default_factory=list)
    low: dict[str, int] = field(default_factory=dict)
    """Per caller, the first call it still waits for (older answers are dropped)."""
    inflight: dict[str, CallState] = field(default_factory=dict)
    """Calls handed to the worker and not applied yet, in the order handed."""
    blocked: dict[str, deque[CallState]] = field(default_factory=dict)
    """Per caller, its calls behind one that waits for its arguments' values."""
    leaving: bool = False


class Host:
    """Every actor hosted here and every replica held here."""

    def __init__(self, ctx: object) -> None:
        self.x = ctx  # the ActorCore: name, send, pref, targets, metrics, limits
        self.hosted: dict[str, Hosted] = {}
        self.copies: dict[str, Copy] = {}
        self.work: list[WorkerEffect] = []
        self._gen = 0
        self.promised: dict[str, tuple[str, int, float]] = {}
        """``(puller, term, until)`` per actor whose copy went to a node taking
        it up: see :func:`mesh.actors._copies.on_state`."""

    # --------------------------------------------------------------- hosting
    def host(self, copy: Copy, fresh: bool) -> Hosted:
        """Start hosting ``copy`` (``fresh``: made just now, from its constructor)."""
        self._gen += 1
        h = self.hosted[copy.actor] = Hosted(copy, self._gen)
        self.copies.pop(copy.actor, None)
        for caller, seq in copy.applied.items():
            h.next_seq[caller] = seq + 1
        state = copy.state if copy.durable else b""
        if not copy.durable:  # a volatile actor starts again from its constructor
            copy.state = b""
        self.work.append(Spawn(copy.actor, h.gen, copy.fn, copy.akind, copy.args, state,
                               copy.durable))
        if not fresh:
            copy.term += 1  # a new host: its versions win over any older host's
            self.x.metrics.inc("actor_takeovers")
            log.info("%s takes actor %s up at version %s", self.x.name, copy.actor, copy.version)
            msg = self.state_msg(copy)  # its new term, at once: the holders' promises end
            for dest in self.x.targets(copy):
                self.x.send(dest, msg)
        return h

    def accept(self, h: Hosted, call: Call, low: int, entry: str) -> None:
        """A call for a hosted actor: queue it in its caller's order, or
        answer it from the record."""
        copy = h.copy
        got = copy.answers.get(call.caller)
        if got and low > h.low.get(call.caller, 0):
            h.low[call.caller] = low
            for s in [s for s in got if s < low]:
                del got[s]
        cs = h.calls.get((call.caller, call.seq))
        if cs is not None:  # sent again while queued or running
            cs.entries.add(entry)
            return
        ans = (got or {}).get(call.seq)
        if ans is not None:  # sent again after it was applied: answer from the record
            self.x.metrics.inc("actor_calls_deduplicated")
            self._reply_after(h, entry, call.key, *ans)
            return
        nxt = h.next_seq.get(call.caller, 1)
        cs = CallState(call, {entry})
        if call.seq < nxt and copy.durable:  # applied, and its caller has its answer
            self.x.send(entry, ActorReply(call.key, P.FAILED, b"this call was answered already"))
            return
        if call.seq > nxt and copy.durable:  # wait for the calls before it
            h.early.setdefault(call.caller, {})[call.seq] = cs
            return
        self._enqueue(h, cs)
        early = h.early.get(call.caller)
        while early:
            more = early.pop(h.next_seq[call.caller], None)
            if more is None:
                break
            self._enqueue(h, more)
        if early is not None and not early:
            del h.early[call.caller]
        self.pump(h)

    def _enqueue(self, h: Hosted, cs: CallState) -> None:
        c = cs.call
        h.next_seq[c.caller] = max(h.next_seq.get(c.caller, 1), c.seq + 1)
        h.calls[(c.caller, c.seq)] = cs
        if c.deps and cs.missing is None:
            self.x.values.fetch(h.copy.actor, cs)
        blocked = h.blocked.get(c.caller)
        if blocked is not None:
            blocked.append(cs)
        elif cs.missing:
            h.blocked[c.caller] = deque((cs,))
        else:
            h.queue.append(cs)

    def unblock(self, h: Hosted, caller: str) -> None:
        """Values arrived: queue ``caller``'s calls up to the next that waits."""
        blocked = h.blocked.get(caller)
        while blocked and not blocked[0].missing:
            h.queue.append(blocked.popleft())
        if blocked is not None and not blocked:
            del h.blocked[caller]
        self.pump(h)

    def pump(self, h: Hosted) -> None:
        """Hand the worker its next batch if it is idle."""
        if (not h.up or h.running is not None or not h.queue or h.leaving
                or len(h.unconfirmed) > self.x.max_unconfirmed):
            return  # (a host cut off from its replicas stops after a few batches)
        batch: list[CallState] = []
        limit = self.x.batch
        while h.queue and len(batch) < limit:
            cs = h.queue.popleft()
            move(cs, "start")
            batch.append(cs)
            h.inflight[cs.call.key] = cs
        h.running = batch
        self.work.append(Run(h.copy.actor, h.gen,
                             [[cs.call.key, cs.call.method, cs.call.akind, cs.call.args,
                               cs.depvals or None] for cs in batch], False))

    # ---------------------------------------------------------- worker events
    def started(self, h: Hosted, kind: int, payload: bytes, state: bytes) -> None:
        copy = h.copy
        if P.is_failure(kind):  # the constructor raised: no actor
            for entry, key in h.opens:
                self.x.send(entry, ActorReply(key, kind, payload))
            h.opens = []
            self.drop(h.copy.actor)
            return
        h.up = True
        if copy.durable and state:
            copy.state = state
        opens, h.opens = h.opens, []
        self.replicate(h, [], opens)
        self.pump(h)

    def ran(self, h: Hosted, results: list, state: bytes, reply: bool = True,
            quiet: bool = True) -> None:
        """The worker reports calls that finished (``reply``: in answer to
        the last :class:`Run`). They are applied (recorded with the state)
        at once if volatile; if durable, at a ``quiet`` point, whose state
        holds every call that finished and none still in flight."""
        if reply:
            h.running = None
        copy = h.copy
        limit = self.x.max_payload
        for key, kind, payload in results:
            cs = h.inflight.get(key)
            if cs is None:
                continue
            kind, payload = self.x.values.result(key, kind, payload)  # large: in the store
            if len(payload) > limit:
                kind, payload = P.FAILED, (
                    f"the result of actor call {key!r} is {len(payload)} bytes, more than "
                    f"{limit}; return something smaller").encode()
            cs.result = (kind, payload)
        if quiet:
            for cs in h.inflight.values():
                if cs.result is None:
                    cs.result = (P.FAILED, b"the actor's worker returned no answer for this call")
        if quiet or not copy.durable:
            done = [cs for cs in h.inflight.values() if cs.result is not None]
            if done:
                for cs in done:
                    c = cs.call
                    del h.inflight[c.key]
                    move(cs, "apply")
                    copy.applied[c.caller] = max(copy.applied.get(c.caller, 0), c.seq)
                    copy.answers.setdefault(c.caller, {})[c.seq] = cs.result
                copy.n += 1
                if copy.durable and state:
                    copy.state = state
                self.x.metrics.inc("actor_calls_applied", len(done))
                self.replicate(h, done, [])
        if h.leaving and h.running is None:
            self.x.hand_over(h)  # calls in flight run again on the new host
            return
        self.pump(h)

    def crashed(self, h: Hosted) -> None:
        """The worker died: start it again from the last state (durable) or
        from the constructor (volatile: the calls in flight are lost)."""
        self.x.metrics.inc("actor_worker_crashes")
        batch, h.running = list(h.inflight.values()), None
        h.inflight.clear()
        for cs in batch:
            cs.result = None  # not in the state it starts again from
        copy = h.copy
        if copy.durable:
            keep = []
            for cs in batch:
                move(cs, "crash")
                cs.crashes += 1
                if cs.crashes >= self.x.max_crashes:
                    self._killed(h, cs)
                else:
                    keep.append(cs)
            h.queue.extendleft(reversed(keep))
        else:
            lost = [*batch, *h.queue]
            h.queue.clear()
            for cs in lost:
                move(cs, "lose")
                h.calls.pop((cs.call.caller, cs.call.seq), None)
                self.x.values.release(cs)
                self.x.fail_lost(cs.entries, cs.call.key,
                                 f"actor {copy.actor!r} is volatile and its worker died; "
                                 "it starts again from its constructor")
        self._gen += 1
        h.gen, h.up = self._gen, False
        self.work.append(Spawn(copy.actor, h.gen, copy.fn, copy.akind, copy.args,
                               copy.state if copy.durable else b"", copy.durable))

    def _killed(self, h: Hosted, cs: CallState) -> None:
        from mesh.exec._running import killed_message

        c = cs.call
        payload = killed_message(c.key, cs.crashes, self.x.name).encode()
        move(cs, "start")
        move(cs, "apply")
        h.copy.applied[c.caller] = c.seq
        h.copy.answers.setdefault(c.caller, {})[c.seq] = (P.KILLED, payload)
        self.replicate(h, [cs], [])

    # ------------------------------------------------------------ replication
    def replicate(self, h: Hosted, calls: list[CallState], opens: list[tuple[str, str]]) -> None:
        """Send the state to the targets; confirm once all acknowledged."""
        copy = h.copy
        targets = set(self.x.targets(copy)) if copy.durable or opens else set()
        b = Batch(copy.n, calls, targets, opens)
        h.unconfirmed.append(b)
        if targets:
            delta = None if not calls else [
                [cs.call.caller, cs.call.seq, *copy.answers[cs.call.caller][cs.call.seq]]
                for cs in calls]
            msg = self.state_msg(copy, delta, h.low)
            for dest in sorted(targets):
                self.x.send(dest, msg)
        if not copy.durable and not opens:
            b.targets = set()
        self.check(h)

    def resend(self) -> None:
        """The whole copy again to targets that did not acknowledge (a lost
        delta, a replica that restarted), and to the actor's targets in the
        current view (one that replaces a dead target: its first copy was lost)."""
        for h in self.hosted.values():
            if h.unconfirmed and h.up:
                head = h.unconfirmed[0]
                now = set(self.x.targets(h.copy)) if h.copy.durable else set()
                missing = ((head.targets | now) & self.x.alive()) - head.acks
                if missing:
                    msg = self.state_msg(h.copy)
                    for dest in sorted(missing):
                        self.x.send(dest, msg)

    def state_msg(self, copy: Copy, delta: list | None = None,
                  low: dict[str, int] | None = None) -> ActorState:
        """The whole copy, or (``delta``) what its last version added."""
        durable = copy.durable
        answers = (delta if delta is not None else copy.answer_list()) if durable else []
        return ActorState(copy.actor, copy.term, copy.n, self.x.name, copy.fn, copy.akind,
                          copy.args, durable, copy.replicas, copy.state if durable else b"",
                          dict(copy.applied), answers, delta is None, dict(low or {}))

    def on_ack(self, msg: ActorAck) -> None:
        h = self.hosted.get(msg.actor)
        if h is None or msg.term != h.copy.term:
            return
        for b in h.unconfirmed:
            if b.n <= msg.n:
                b.acks.add(msg.holder)
        self.check(h)

    def check(self, h: Hosted) -> None:
        """Answer every batch, oldest first, whose alive targets all hold it."""
        alive = self.x.alive()
        need = h.copy.replicas - 1 if h.copy.durable else 0
        while h.unconfirmed:
            b = h.unconfirmed[0]
            if not (b.targets & alive) <= b.acks or len(b.acks & alive) < need:
                return  # durable: the state must be on R nodes, however few are up
            h.unconfirmed.popleft()
            if not h.unconfirmed:
                self.pump(h)
            copy = h.copy
            for cs in b.calls:
                if cs.state == APPLIED:
                    move(cs, "confirm")
                c = cs.call
                h.calls.pop((c.caller, c.seq), None)
                self.x.values.release(cs)
                kind, payload = copy.answers.get(c.caller, {}).get(c.seq, (P.FAILED, b""))
                for entry in sorted(cs.entries):
                    self.x.send(entry, ActorReply(c.key, kind, payload))
            for entry, key in b.opens:
                self.x.send(entry, ActorReply(key, *self.x.here()))
            for entry, key, kind, payload in b.replies:
                self.x.send(entry, ActorReply(key, kind, payload))

    def _reply_after(self, h: Hosted, entry: str, key: str, kind: int, payload: bytes) -> None:
        """Answer from the record, after the batches still unconfirmed."""
        if h.unconfirmed:
            h.unconfirmed[-1].replies.append((entry, key, kind, payload))
        else:
            self.x.send(entry, ActorReply(key, kind, payload))

    def open_done(self, h: Hosted, entry: str, key: str) -> None:
        """An open for an actor that exists: answer once it is up and held."""
        if not h.up:
            h.opens.append((entry, key))
        else:
            self._reply_after(h, entry, key, *self.x.here())

    # --------------------------------------------------------------- replicas
    def on_state(self, msg: ActorState) -> None:
        """Keep a newer copy; acknowledge the version we hold (:mod:`mesh.actors._copies`)."""
        on_state(self, msg)

    def drop(self, actor: str) -> list[CallState]:
        """Forget ``actor`` here; returns the calls it had not answered."""
        self.copies.pop(actor, None)
        h = self.hosted.pop(actor, None)
        if h is None:
            return []
        self.work.append(Kill(actor, h.gen))
        left = [cs for cs in h.calls.values() if cs.state in (QUEUED, RUNNING, APPLIED)]
        for early in h.early.values():
            left.extend(early.values())
        for cs in left:
            self.x.values.release(cs)  # its next host fetches them again
        return left
