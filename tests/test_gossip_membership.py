"""Behaviour of the sans-IO SWIM/Lifeguard state machine, driven directly."""

from __future__ import annotations

import random

import msgpack
import pytest
from gossip_harness import Cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.config import Config
from mesh.errors import WireError
from mesh.gossip import EventKind, Membership, Send, Status
from mesh.gossip._messages import Alive, Dead, Ping, Suspect, compound, decode_compound, encode
from mesh.gossip._suspicion import Suspicion
from mesh.wire import OVERHEAD

A = ("127.0.0.1", 7001)
B = ("127.0.0.1", 7002)


def core(name: str = "a", addr=A, **cfg) -> Membership:
    return Membership(name, addr, Config().with_(**cfg), random.Random(1), now=0.0)


def body(*msgs) -> list:
    return msgpack.unpackb(compound([encode(m) for m in msgs]))


def sent_messages(effects) -> list:
    out = []
    for e in effects:
        if isinstance(e, Send):
            out.extend(decode_compound(msgpack.unpackb(e.body)))
    return out


def test_a_suspected_node_that_refutes_becomes_alive_again() -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    a.receive(body(Suspect(0, "b", "c")), B, 1.0)
    assert a.get("b").status is Status.SUSPECT
    a.receive(body(Alive(1, "b", B, {})), B, 2.0)
    assert a.get("b").status is Status.ALIVE
    kinds = [e.kind for e in a.drain_events()]
    assert kinds == [EventKind.JOIN, EventKind.SUSPECT, EventKind.UPDATE]
    a.tick(60.0)  # the cancelled suspicion never fires
    assert a.get("b").status is Status.ALIVE


@pytest.mark.parametrize("accusation", [Suspect(0, "a", "b"), Dead(0, "a", "b")])
def test_a_node_refutes_an_accusation_with_a_higher_incarnation(accusation) -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    a.receive(body(accusation), B, 1.0)
    assert a.local.incarnation == 1 and a.local.status is Status.ALIVE
    out = a.tick(a.next_deadline() + 1.0)  # the next gossip round carries the refutation
    alive = [m for m in sent_messages(out) if isinstance(m, Alive) and m.node == "a"]
    assert alive and alive[0].incarnation == 1
    assert a.health_score == 1  # Lifeguard: being accused is a hint we are the slow one


def test_a_refutation_goes_straight_back_to_whoever_told_us() -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    out = a.receive(body(Suspect(0, "a", "c")), B, 1.0)  # b relays c's accusation
    to_b = [m for e in out if isinstance(e, Send) and e.addr == B
            for m in decode_compound(msgpack.unpackb(e.body))]
    assert Alive(1, "a", A, {}) in to_b


def test_a_higher_incarnation_wins_over_what_we_believed() -> None:
    a = core()
    a.receive(body(Alive(3, "b", B, {"w": 1})), B, 0.0)
    a.receive(body(Dead(3, "b", "c")), B, 0.0)
    assert a.get("b").status is Status.DEAD
    a.receive(body(Alive(2, "b", B, {})), B, 0.0)  # stale: ignored
    assert a.get("b").status is Status.DEAD
    a.receive(body(Alive(4, "b", B, {"w": 2})), B, 0.0)
    assert a.get("b").status is Status.ALIVE and a.get("b").meta == {"w": 2}


def test_a_graceful_leave_is_left_not_dead() -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    a.receive(body(Dead(0, "b", "b")), B, 0.0)
    assert a.get("b").status is Status.LEFT
    a.receive(body(Dead(0, "b", "c")), B, 0.0)  # a later dead does not downgrade left
    assert a.get("b").status is Status.LEFT


def test_probing_a_suspect_carries_the_suspicion_to_it_buddy_system() -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    a.receive(body(Suspect(0, "b", "c")), B, 0.0)
    msgs = sent_messages(a.tick(a.next_deadline() + 1.0))
    pings = [m for m in msgs if isinstance(m, Ping) and m.target == "b"]
    assert pings, "expected a probe of b"
    assert any(isinstance(m, Suspect) and m.node == "b" for m in msgs)


def test_suspicion_timeout_shrinks_with_independent_confirmations() -> None:
    s = Suspicion(start=0.0, first="a", k=3, min_timeout=4.0, max_timeout=24.0)
    assert s.deadline == 24.0
    assert s.confirm("b") and s.deadline < 24.0
    assert not s.confirm("b")  # the same sender twice is not independent
    s.confirm("c")
    s.confirm("d")
    assert s.deadline == pytest.approx(4.0)
    assert not s.confirm("e")  # capped at k


def test_every_datagram_fits_the_size_bound() -> None:
    a = core(max_datagram=400)
    for i in range(60):
        a.receive(body(Alive(0, f"peer-{i:03d}", ("127.0.0.1", 8000 + i), {"k": "x" * 20})), B, 0.0)
    sends = [e for e in a.tick(5.0) if isinstance(e, Send)]
    assert sends
    assert all(len(e.body) + OVERHEAD <= 400 for e in sends)


# Messages of every known type whose fields may be of the wrong type or out of
# range, so that examples reach the per-message checks, not just the shape check.
_keys = st.text(max_size=3) | st.integers()
_field = (st.integers(-3, 2**64) | st.text(max_size=300) | st.none() | st.booleans()
          | st.binary(max_size=4) | st.dictionaries(_keys, st.integers(), max_size=2))
_valid = st.sampled_from([
    [1, 7, "a"], [2, 8, "c", "127.0.0.1", 7003], [3, 9], [4, 9],
    [5, 4, "c", "127.0.0.1", 7003, {"w": 1}], [6, 2, "c", "b"], [7, 2, "c", "b"],
])


@st.composite
def _hostile_message(draw) -> list:
    msg = list(draw(_valid))
    how = draw(st.sampled_from(["field", "drop", "extra", "fine"]))
    if how == "field":
        msg[draw(st.integers(1, len(msg) - 1))] = draw(_field)
    elif how == "drop":
        del msg[draw(st.integers(1, len(msg) - 1))]
    elif how == "extra":
        msg.append(draw(_field))
    return msg


@given(st.lists(_hostile_message(), min_size=1, max_size=4))
@settings(max_examples=400)
def test_hostile_datagrams_change_nothing_unless_every_message_is_valid(msgs) -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    a.receive(body(Alive(1, "c", ("127.0.0.1", 7003), {})), B, 0.0)
    before = a.members()
    valid = True
    try:  # what the node knows decides which stale alives are skipped unparsed
        decode_compound(msgs, {m.name: m for m in before}, "a")
    except WireError:
        valid = False
    try:
        a.receive(msgs, B, 1.0)
    except WireError:
        assert not valid
        assert a.members() == before  # all or nothing: a half-valid datagram is dropped
    else:
        assert valid


def test_a_valid_message_behind_a_bad_one_is_not_applied() -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    with pytest.raises(WireError):
        a.receive([[7, 0, "b", "c"], [5, "one", "b", "h", 1, {}]], B, 1.0)
    assert a.get("b").status is Status.ALIVE


@given(st.binary(max_size=200) | st.lists(st.integers() | st.text() | st.none(), max_size=6))
@settings(max_examples=100)
def test_a_datagram_that_is_not_a_list_of_messages_is_rejected(junk) -> None:
    a = core()
    before = a.members()
    with pytest.raises(WireError):
        a.receive(junk, B, 1.0)
    assert a.members() == before


def test_metadata_changes_spread_with_a_higher_incarnation() -> None:
    c = Cluster(4, seed=3)
    c.run(5.0)
    c.nodes["n002"].set_meta({"workers": 8}, c.now)
    c.run(10.0)
    for name in c.live():
        m = c.nodes[name].get("n002")
        assert m.meta == {"workers": 8} and m.incarnation == 1


def test_oversized_metadata_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"metadata is \d+ bytes; the limit is 512"):
        core().set_meta({"blob": "x" * 600}, 0.0)


# ---------------------------------------------------------------- clusters
@given(n=st.integers(3, 8), seed=st.integers(0, 10_000))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_node_that_answers_every_probe_is_never_declared_dead(n: int, seed: int) -> None:
    c = Cluster(n, seed=seed, latency=(0.0005, 0.2))
    c.run(60.0)
    for obs in c.live():
        for m in c.nodes[obs].members():
            assert m.status is Status.ALIVE, (obs, m)


@given(n=st.integers(3, 10), seed=st.integers(0, 10_000))
@settings(max_examples=30, deadline=None)
def test_a_crashed_node_is_declared_dead_by_every_survivor_within_the_bound(n, seed) -> None:
    c = Cluster(n, seed=seed)
    c.run(10.0)
    for obs in c.live():  # everyone joined at once; all must know all within 10 s
        assert [c.status(obs, t) for t in c.live()] == [Status.ALIVE] * n, obs
    victim = f"n{n - 1:03d}"
    c.crash(victim)
    c.run(10.0 + c.config.detection_bound(n))
    for obs in c.live():
        assert c.status(obs, victim) is Status.DEAD, obs


def test_a_leaving_node_is_marked_left_by_everyone_at_once() -> None:
    c = Cluster(5, seed=9)
    c.run(10.0)
    c._deliver("n004", c.nodes["n004"].leave(c.now))
    c.run(c.now + 0.1)
    c.crash("n004")
    for obs in c.live():
        assert c.status(obs, "n004") is Status.LEFT


def test_a_restarted_node_rejoins_with_a_higher_incarnation() -> None:
    c = Cluster(4, seed=5)
    c.run(10.0)
    c.crash("n003")
    c.run(40.0)
    assert c.status("n000", "n003") is Status.DEAD
    fresh = c.add("n003", c.addr_of["n003"])  # state lost: starts at incarnation 0
    c.push_pull("n003", "n000")
    c.run(50.0)
    assert fresh.local.incarnation >= 1
    for obs in c.live():
        assert c.status(obs, "n003") is Status.ALIVE


def test_a_node_that_loses_its_own_acks_raises_its_health_score() -> None:
    # n000 hears nothing (its inbound link is dead) but everyone else is fine.
    c = Cluster(6, seed=2, drop=lambda src, dst, now: dst == "n000" and now > 10.0)
    c.run(10.0)
    c.run(20.0)
    assert c.nodes["n000"].health_score > 0
    assert all(c.nodes[n].health_score == 0 for n in c.live() if n != "n000")


@pytest.mark.parametrize("seed", [11, 21])
def test_a_mass_join_of_200_converges_within_20_seconds(seed: int) -> None:
    # Seeds where a rumour missed a member during the join; the second early
    # full sync of fresh nodes repairs it, instead of the 60 s push-pull period.
    c = Cluster(200, seed=seed)
    c.run(20.0)
    assert min(len(c.nodes[o].members()) for o in c.live()) == 200


@pytest.mark.parametrize("stale", [Suspect(0, "b", "c"), Dead(0, "b", "c")])
def test_a_stale_accusation_is_answered_with_the_newer_alive(stale) -> None:
    """Whoever relays an accusation older than a refutation missed it; it gets
    the alive straight back (else stale accusations from a healed partition
    confirm its own suspicion, and it declares a live node dead)."""
    a = core()
    a.receive(body(Alive(2, "b", B, {})), B, 0.0)
    C = ("127.0.0.1", 7003)
    out = a.receive(body(stale), C, 1.0)
    to_c = [m for e in out if isinstance(e, Send) and e.addr == C
            for m in decode_compound(msgpack.unpackb(e.body))]
    assert Alive(2, "b", B, {}) in to_c
    assert a.get("b").status is Status.ALIVE and a.get("b").incarnation == 2


@pytest.mark.parametrize("stale", [Suspect(0, "a", "b"), Dead(0, "a", "b")])
def test_an_accusation_we_already_refuted_is_answered_with_our_alive(stale) -> None:
    """A prober still suspecting us at the incarnation we refuted missed the
    refutation (its retransmissions are spent); its buddy-system ping gets our
    current alive straight back, else its suspicion runs out and it declares a
    live node dead."""
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    a.receive(body(Suspect(0, "a", "c")), B, 1.0)  # refuted: incarnation 1
    assert a.local.incarnation == 1
    for step in range(1, 20):  # gossip rounds spend the refutation's retransmissions
        a.tick(1.0 + 0.2 * step)
    out = a.receive(body(stale, Ping(7, "a")), B, 5.0)
    to_b = [m for e in out if isinstance(e, Send) and e.addr == B
            for m in decode_compound(msgpack.unpackb(e.body))]
    assert Alive(1, "a", A, {}) in to_b
    assert a.local.incarnation == 1  # not refuted again: nothing new to refute


def _sent_to(out, addr) -> list:
    return [m for e in out if isinstance(e, Send) and e.addr == addr
            for m in decode_compound(msgpack.unpackb(e.body))]


def test_a_suspicion_heard_from_others_is_told_to_the_suspect_and_its_answer_clears_it() -> None:
    """A node that suspects a member only on others' word (and so never
    probes it), and whose timer their confirmations shrink, may have missed
    the member's refutation: it tells the suspect directly, once when the
    suspicion starts and at each confirmation, alone in its datagram."""
    a = core()
    for name, addr in (("b", B), ("c", ("10.0.0.3", 7946)), ("d", ("10.0.0.4", 7946)),
                       ("e", ("10.0.0.5", 7946))):
        a.receive(body(Alive(0, name, addr, {})), addr, 0.0)
    c_addr = ("10.0.0.3", 7946)
    out = a.receive(body(Suspect(0, "b", "c")), c_addr, 1.0)
    assert a.get("b").status is Status.SUSPECT
    assert _sent_to(out, B) == [Suspect(0, "b", "a")]
    out = a.receive(body(Suspect(0, "b", "d")), ("10.0.0.4", 7946), 2.0)  # a confirmation
    assert _sent_to(out, B) == [Suspect(0, "b", "a")]
    out = a.receive(body(Suspect(0, "b", "d")), ("10.0.0.4", 7946), 2.5)  # not a new one
    assert _sent_to(out, B) == []
    # b refuted long ago (incarnation 1): its answer clears the suspicion
    b = core("b", B)
    b.receive(body(Suspect(0, "b", "c")), c_addr, 0.5)
    for step in range(1, 20):
        b.tick(0.5 + 0.2 * step)
    answer = _sent_to(b.receive(body(Suspect(0, "b", "a")), A, 3.0), A)
    assert Alive(1, "b", B, {}) in answer
    a.receive(body(*answer), B, 3.1)
    assert a.get("b").status is Status.ALIVE and a.get("b").incarnation == 1


def test_our_own_failed_probe_sends_the_suspect_nothing_more() -> None:
    a = core()
    a.receive(body(Alive(0, "b", B, {})), B, 0.0)
    out = a.receive(body(Suspect(0, "b", "a")), B, 1.0)  # as the prober's own suspicion
    assert Suspect(0, "b", "a") not in _sent_to(out, B)


def test_nodes_in_one_process_that_believe_the_same_share_one_member_record() -> None:
    """A simulator runs thousands of nodes in one process: equal beliefs are
    one immutable record (mesh.gossip._intern.intern_member), not one each."""
    c = ("10.0.0.3", 7946)
    a, b = core("a", A), core("b", B)
    for m in (a, b):
        m.receive(body(Alive(3, "c", c, {"zone": "z"})), c, 0.0)
    assert a.get("c") == b.get("c") and a.get("c") is b.get("c")


def test_a_late_confirmation_leaves_the_suspect_a_probe_timeout_to_answer() -> None:
    """Campaign seed 51 (gossip, at a67582d): a node's own suspicion ran for
    23 s unheard (its broadcasts went to nodes a one-way partition cut off),
    then a confirmation shrank the timer to a moment already past and the node
    declared the suspect dead at once, 8 ms before the refutation its direct
    tell would have drawn. A confirmation now leaves ``probe_timeout``."""
    peers = (("b", B), ("c", ("10.0.0.3", 7946)), ("d", ("10.0.0.4", 7946)),
             ("e", ("10.0.0.5", 7946)))
    for answered in (True, False):
        a = core()
        for name, addr in peers:
            a.receive(body(Alive(0, name, addr, {})), addr, 0.0)
        a.receive(body(Suspect(0, "b", "a")), B, 1.0)  # our own failed probe
        out = a.receive(body(Suspect(0, "b", "c")), ("10.0.0.3", 7946), 20.0)
        assert _sent_to(out, B) == [Suspect(0, "b", "a")]  # told, alone
        a.tick(20.0)
        assert a.get("b").status is Status.SUSPECT, "declared dead before b could answer"
        if answered:
            a.receive(body(Alive(1, "b", B, {})), B, 20.1)
            assert a.get("b").status is Status.ALIVE and a.get("b").incarnation == 1
            a.tick(20.0 + a.config.probe_timeout)
            assert a.get("b").status is not Status.DEAD
        else:  # a crashed suspect is still declared dead a probe timeout later
            a.tick(20.0 + a.config.probe_timeout)
            assert a.get("b").status is Status.DEAD


def test_a_suspicion_of_a_member_we_hold_dead_is_answered_with_the_death() -> None:
    """Data campaign seed 162 (at ce8fe21): a node cut off while a crash's
    death spread missed every retransmission; nobody confirms a suspicion of
    a member the others hold dead, so its own (its probes slowed by its health
    score) took 60 s. Whoever relays such a suspicion is told the death."""
    c_addr = ("10.0.0.3", 7946)
    a = core()
    for name, addr in (("b", B), ("c", c_addr)):
        a.receive(body(Alive(0, name, addr, {})), addr, 0.0)
    a.receive(body(Dead(0, "b", "c")), c_addr, 1.0)
    assert a.get("b").status is Status.DEAD
    out = a.receive(body(Suspect(0, "b", "c")), c_addr, 2.0)
    assert Dead(0, "b", "a") in _sent_to(out, c_addr)
    out = a.receive(body(Suspect(1, "b", "c")), c_addr, 3.0)  # b came back since
    assert not [m for m in _sent_to(out, c_addr) if isinstance(m, Dead)]
    # and the node that missed the death takes it at once
    c = core("c", c_addr)
    c.receive(body(Alive(0, "b", B, {})), B, 0.0)
    c.receive(body(Suspect(0, "b", "c")), B, 2.0)
    c.receive(body(Dead(0, "b", "a")), A, 2.1)
    assert c.get("b").status is Status.DEAD
