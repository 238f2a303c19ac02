"""How a node's belief about a member changes: the rules Membership applies
to gossip (``receive``) and to push-pull tables (``merge_remote``)."""

from __future__ import annotations

import random

import msgpack
from hypothesis import given
from hypothesis import strategies as st

from mesh.config import Config
from mesh.gossip import Member, Membership, Status
from mesh.gossip._messages import Alive, Dead, Suspect, compound, encode

ME = ("10.0.0.1", 7946)
PEER = ("10.0.0.2", 7946)
X = ("10.0.0.3", 7946)


def node() -> Membership:
    return Membership("a", ME, Config(), random.Random(1), now=0.0)


def gossip(m: Membership, msg: object) -> None:
    m.receive(msgpack.unpackb(compound([encode(msg)])), PEER, 0.5)


def push_pull(m: Membership, inc: int, status: Status) -> None:
    row = Member("x", X, inc, status, {})
    m.merge_remote(msgpack.unpackb(msgpack.packb([row])), 0.5)


# One event about member "x": gossip of each kind, or a push-pull row.
events = st.one_of(
    st.tuples(st.just("alive"), st.integers(0, 6)),
    st.tuples(st.just("suspect"), st.integers(0, 6)),
    st.tuples(st.just("dead"), st.integers(0, 6)),
    st.tuples(st.just("left"), st.integers(0, 6)),
    st.tuples(st.sampled_from(list(Status)), st.integers(0, 6)),
)


def apply(m: Membership, event: tuple) -> None:
    what, inc = event
    if isinstance(what, Status):
        push_pull(m, inc, what)
    elif what == "alive":
        gossip(m, Alive(inc, "x", X, {}))
    elif what == "suspect":
        gossip(m, Suspect(inc, "x", "c"))
    else:
        gossip(m, Dead(inc, "x", "x" if what == "left" else "c"))


def belief(m: Membership) -> tuple[int, int] | None:
    x = m.get("x")
    return None if x is None else (x.incarnation, int(x.status))


@given(st.lists(events, max_size=12))
def test_a_belief_only_ever_moves_forward(history: list[tuple]) -> None:
    """(incarnation, status) never goes back, whatever arrives in whatever order:
    a stale rumour or table row never undoes newer knowledge."""
    m = node()
    last = None
    for event in history:
        apply(m, event)
        now = belief(m)
        if last is not None:
            assert now is not None and now >= last, (event, last, now)
        last = now


@given(st.lists(events, max_size=8), st.integers(0, 6))
def test_an_alive_with_a_higher_incarnation_always_wins(history: list[tuple], bump: int) -> None:
    m = node()
    for event in history:
        apply(m, event)
    top = max([inc for _, inc in history], default=0) + 1 + bump
    gossip(m, Alive(top, "x", X, {"w": 1}))
    x = m.get("x")
    assert (x.incarnation, x.status, x.meta) == (top, Status.ALIVE, {"w": 1})


@given(st.lists(st.sampled_from(["alive", "suspect", "dead", "left"]), max_size=6),
       st.integers(0, 6), st.randoms())
def test_at_equal_incarnation_the_strongest_status_wins_in_any_order(
        kinds: list[str], inc: int, rnd: random.Random) -> None:
    order = {"alive": Status.ALIVE, "suspect": Status.SUSPECT, "dead": Status.DEAD,
             "left": Status.LEFT}
    expected = max([Status.ALIVE, *(order[k] for k in kinds)])
    for _ in range(2):
        shuffled = list(kinds)
        rnd.shuffle(shuffled)
        m = node()
        gossip(m, Alive(inc, "x", X, {}))
        for k in shuffled:
            apply(m, (k, inc))
        assert m.get("x").status is expected, shuffled


def test_a_dead_row_in_a_push_pull_is_only_a_suspicion_until_it_times_out() -> None:
    """A table may be stale: a remote death makes us suspect, not declare dead."""
    m = node()
    gossip(m, Alive(2, "x", X, {}))
    push_pull(m, 2, Status.DEAD)
    assert m.get("x").status is Status.SUSPECT
    push_pull(m, 5, Status.DEAD)
    assert (m.get("x").incarnation, m.get("x").status) == (5, Status.SUSPECT)
    m.tick(m.next_deadline() + 120.0)
    assert m.get("x").status is Status.DEAD


def test_a_member_first_heard_of_as_suspect_or_dead_stays_unknown() -> None:
    """It may be one we declared dead and forgot, from a peer not caught up."""
    m = node()
    push_pull(m, 3, Status.DEAD)
    push_pull(m, 3, Status.SUSPECT)
    gossip(m, Dead(3, "x", "c"))
    gossip(m, Suspect(3, "x", "c"))
    assert m.get("x") is None


def test_status_words_are_the_documented_ones() -> None:
    assert [s.word for s in Status] == ["alive", "suspect", "dead", "left"]
    assert Member("a", ("127.0.0.1", 7946), 3, Status.SUSPECT).to_dict() == {
        "name": "a",
        "address": "127.0.0.1:7946",
        "status": "suspect",
        "incarnation": 3,
        "meta": {},
    }


def test_a_member_is_its_push_pull_row() -> None:
    import msgpack

    m = Member("a", ("10.0.0.1", 7946), 3, Status.SUSPECT, {"workers": 2})
    assert msgpack.unpackb(msgpack.packb(m)) == ["a", "10.0.0.1", 7946, 3, 1, {"workers": 2}]
    assert m.addr == ("10.0.0.1", 7946) and m.address == "10.0.0.1:7946"


def test_member_copies_pickles_and_hash_follow_the_dataclass_it_replaced() -> None:
    import pickle

    m = Member("a", ("h", 1), 3, Status.ALIVE, {"q": 1})
    moved = m.with_(addr=("h2", 2), incarnation=4)
    assert (moved.addr, moved.incarnation, moved.meta) == (("h2", 2), 4, {"q": 1})
    assert type(moved) is Member and pickle.loads(pickle.dumps(m)) == m
    assert hash(m) == hash(m.with_(meta={"q": 2}))  # the hash leaves meta out
    try:
        m.with_(colour="red")
    except TypeError as exc:
        assert "colour" in str(exc)
    else:
        raise AssertionError("an unknown field must be refused")

