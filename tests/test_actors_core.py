"""The sans-IO actor core driven directly: a hypothesis state machine over a
few nodes (real exec cores and codecs, FIFO channels delivered in any
interleaving, workers applied in-process) with worker crashes, a host's death
and ticks. Every call is applied exactly once, in its caller's order, and
answered once; a call only moves along ``mesh.actors._records.TRANSITIONS``."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mesh.actors._core import ActorCore
from mesh.actors._records import (
    TRANSITIONS,
    CallState,
    Crashed,
    IllegalTransition,
    Kill,
    Ran,
    Run,
    Spawn,
    Started,
    move,
)
from mesh.actors._records import Call as CallRec
from mesh.actors._worker import Actor
from mesh.exec._core import ExecCore
from mesh.exec._effects import ToClient, ToPeer
from mesh.metrics import Metrics
from mesh.protocol import payload as P
from mesh.protocol.messages import (
    ActorCall,
    ActorOpen,
    ActorRelay,
    ProtocolViolation,
    decode_peer,
    encode,
)


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n


NAMES = ["a", "b", "c", "d"]
ACTOR = "actor-c"
START = 100


class Node:
    def __init__(self, name: str) -> None:
        self.exec = ExecCore(name, replicas=2, max_crashes=3, metrics=Metrics())
        self.actors = ActorCore(self.exec.table, batch=4, grace=3.0, resend=1.0,
                                 max_crashes=10**6, exec_core=self.exec)
        self.exec.add_handlers({ActorCall: self.actors.client_message,
                                ActorOpen: self.actors.client_message},
                               self.actors.peer_handlers())
        self.workers: dict[str, tuple[int, Actor]] = {}


class ActorMesh(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.nodes = {n: Node(n) for n in NAMES}
        self.alive = list(NAMES)
        self.links: dict[tuple[str, str], deque[list]] = {}
        self.events: deque[object] = deque()
        self.entry = "a"
        self.nodes["a"].exec.open_session(1)
        self.done: dict[str, tuple[int, bytes]] = {}
        self.sent = 0
        self.killed = False
        self.set_view()
        key = f"{ACTOR}/open"
        fn = P.dumps_function(Counter)
        akind, args, _ = P.dumps_args((START,), {})
        self.client([encode(ActorOpen(key, ACTOR, fn, akind, args, True, 2))])
        self.settle()
        assert key in self.done and not P.is_failure(self.done[key][0])

    # ------------------------------------------------------------ plumbing
    def carry(self, src: str, effects: list) -> None:
        for eff in effects:
            if type(eff) is ToPeer:
                if eff.dest in self.alive:
                    self.links.setdefault((src, eff.dest), deque()).append(
                        [encode(m) for m in eff.msgs])
            elif type(eff) is ToClient:
                for m in eff.msgs:
                    assert m.key not in self.done, f"{m.key} answered twice"
                    self.done[m.key] = (m.kind, m.payload)
        node = self.nodes[src]
        for w in node.actors.take_work():
            if type(w) is Spawn:
                a = Actor()
                node.workers[w.actor] = (w.gen, a)
                r = a.init(w.fn, w.akind, w.args, w.state, w.durable)
                self.events.append((src, Started(w.actor, w.gen, r[1], r[2], r[3])))
            elif type(w) is Run:
                gen, a = node.workers[w.actor]
                assert gen == w.gen
                r = a.run(w.calls, w.snapshot)
                self.events.append((src, Ran(w.actor, w.gen, r[1], r[2])))
            elif type(w) is Kill:
                node.workers.pop(w.actor, None)

    def client(self, msgs: list) -> None:
        ex = self.nodes[self.entry].exec
        self.carry(self.entry, ex.client_messages(1, msgs))

    def set_view(self) -> None:
        members = [(n, 1) for n in self.alive]
        for n in self.alive:
            node = self.nodes[n]
            effects = node.exec.set_view(members, self.now)
            node.actors.view_changed(self.now)
            self.carry(n, effects + node.exec.flush())

    def deliver(self, link: tuple[str, str]) -> None:
        frames = self.links[link]
        msgs = frames.popleft()
        if not frames:
            del self.links[link]
        src, dest = link
        if dest in self.alive:
            node = self.nodes[dest]
            self.carry(dest, node.exec.peer_messages(src, msgs))

    def worker_event(self) -> None:
        src, ev = self.events.popleft()
        if src in self.alive:
            node = self.nodes[src]
            node.actors.worker_event(ev)
            self.carry(src, node.exec.flush())

    def settle(self) -> None:
        for _ in range(10_000):
            if self.links:
                self.deliver(sorted(self.links)[0])
            elif self.events:
                self.worker_event()
            else:
                return
        raise AssertionError("the mesh did not settle")

    # --------------------------------------------------------------- rules
    @rule(n=st.integers(1, 6))
    def call(self, n: int) -> None:
        msgs = []
        for _ in range(n):
            self.sent += 1
            seq = self.sent
            akind, args, _ = P.dumps_args((), {})
            msgs.append(encode(ActorCall(f"{ACTOR}/h/{seq}", ACTOR, "h", seq, 1, "incr",
                                         akind, args, True, [])))
        self.client(msgs)

    @rule(data=st.data())
    @precondition(lambda self: bool(self.links))
    def deliver_some(self, data: st.DataObject) -> None:
        self.deliver(data.draw(st.sampled_from(sorted(self.links))))

    @rule()
    @precondition(lambda self: bool(self.events))
    def run_worker(self) -> None:
        self.worker_event()

    @rule()
    def crash_host_worker(self) -> None:
        for n in self.alive:
            h = self.nodes[n].actors.host.hosted.get(ACTOR)
            if h is not None:
                self.events.append((n, Crashed(ACTOR, h.gen)))

    @rule(victim=st.sampled_from(["c", "c", "b", "d"]))  # c hosts the actor first
    @precondition(lambda self: not self.killed)
    def kill_node(self, victim: str) -> None:
        self.killed = True
        self.alive.remove(victim)
        self.links = {k: v for k, v in self.links.items() if victim not in k}
        self.events = deque(e for e in self.events if e[0] != victim)
        self.set_view()

    @rule(dt=st.floats(0.1, 2.0))
    def tick(self, dt: float) -> None:
        self.now += dt
        for n in self.alive:
            node = self.nodes[n]
            node.exec.tick(self.now)
            node.actors.tick(self.now)
            self.carry(n, node.exec.flush())

    @invariant()
    def answers_are_exact(self) -> None:
        for seq in range(1, self.sent + 1):
            got = self.done.get(f"{ACTOR}/h/{seq}")
            if got is not None:
                assert got[0] in (P.OK_MSGPACK, P.OK_PICKLE), P.load_error(got[1])
                assert P.loads_value(*got) == START + seq  # in order, each applied once

    def teardown(self) -> None:
        for _ in range(20):
            self.settle()
            if all(f"{ACTOR}/h/{s}" in self.done for s in range(1, self.sent + 1)):
                break
            self.tick(1.5)
        self.answers_are_exact()
        missing = [s for s in range(1, self.sent + 1) if f"{ACTOR}/h/{s}" not in self.done]
        assert not missing, f"calls never answered: {missing[:10]}"


TestActorMesh = ActorMesh.TestCase
TestActorMesh.settings = settings(max_examples=60, stateful_step_count=40, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])


def test_a_call_moves_only_along_the_transition_table() -> None:
    cs = CallState(CallRec("k", "c", 1, "m", 0, b""), {"a"})
    for event in ("start", "apply", "confirm"):
        move(cs, event)
    with pytest.raises(IllegalTransition, match="no move 'start' from answered"):
        move(cs, "start")
    assert all(isinstance(v, int) for v in TRANSITIONS.values())


def test_a_relay_must_carry_an_actor_record() -> None:
    node = Node("a")
    bad = encode(ActorRelay("b", ["p"]))  # a Ping inside: not an actor record
    with pytest.raises(ProtocolViolation, match="carries Ping"):
        node.exec.peer_messages("b", [bad])
    with pytest.raises(ProtocolViolation):
        decode_peer(["as", "x", 1])


def test_a_durable_answer_waits_for_the_replica_so_the_hosts_death_loses_nothing() -> None:
    """The host applies a call and dies after its answer could have left but
    before its replica got the state: the answer must not have left."""
    m = ActorMesh()
    m.call(1)
    m.deliver(("a", "c"))  # the relay reaches the host
    m.run_worker()  # the worker applies it; the state goes to b
    if ("c", "a") in m.links:
        m.deliver(("c", "a"))
    m.kill_node("c")  # the state to b is lost with its host
    m.call(1)
    m.teardown()


def _first_run(m: ActorMesh) -> tuple[str, Ran]:
    """Deliver messages until the host's worker answered a run; take that answer."""
    while not m.events:
        m.deliver(sorted(m.links)[0])
    src, ev = m.events.popleft()
    assert type(ev) is Ran
    return src, ev


def test_a_durable_call_is_answered_only_at_a_quiet_point() -> None:
    """Async calls in flight (not quiet): calls that finished are not applied
    or replicated until no call is in flight, so no replicated state holds a
    call half done."""
    m = ActorMesh()
    m.call(1)
    src, ev = _first_run(m)
    m.events.append((src, Ran(ev.actor, ev.gen, ev.results, b"", True, False)))
    m.settle()
    assert f"{ACTOR}/h/1" not in m.done  # finished, but another call is in flight
    m.events.append((src, Ran(ev.actor, ev.gen, [], ev.state, False, True)))
    m.settle()
    assert P.loads_value(*m.done[f"{ACTOR}/h/1"]) == START + 1


def test_a_crash_before_a_quiet_point_runs_finished_calls_again_once() -> None:
    m = ActorMesh()
    m.call(1)
    src, ev = _first_run(m)
    m.events.append((src, Ran(ev.actor, ev.gen, ev.results, b"", True, False)))
    m.settle()
    m.events.append((src, Crashed(ev.actor, ev.gen)))  # its state never left the worker
    m.settle()
    assert P.loads_value(*m.done[f"{ACTOR}/h/1"]) == START + 1  # applied once
