"""Properties of member beliefs and how they merge."""

from __future__ import annotations

from functools import reduce

from hypothesis import given
from hypothesis import strategies as st

from mesh.gossip import Member, Status, merge, precedence

statuses = st.sampled_from(list(Status))
members = st.builds(
    Member,
    name=st.just("x"),
    addr=st.tuples(st.sampled_from(["127.0.0.1", "10.0.0.2"]), st.integers(1, 65535)),
    incarnation=st.integers(0, 10),
    status=statuses,
    meta=st.dictionaries(st.sampled_from(["workers", "queue"]), st.integers(0, 9), max_size=2),
)


@given(members, members)
def test_merge_is_commutative(a: Member, b: Member) -> None:
    assert merge(a, b) == merge(b, a)


@given(members)
def test_merge_is_idempotent(a: Member) -> None:
    assert merge(a, a) == a


@given(members, members, members)
def test_merge_is_associative(a: Member, b: Member, c: Member) -> None:
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@given(st.lists(members, min_size=1, max_size=8), st.randoms())
def test_merge_order_of_arrival_does_not_matter(beliefs: list[Member], rnd) -> None:
    shuffled = list(beliefs)
    rnd.shuffle(shuffled)
    assert reduce(merge, beliefs) == reduce(merge, shuffled)


@given(members, members)
def test_higher_incarnation_always_wins(a: Member, b: Member) -> None:
    if a.incarnation == b.incarnation:
        return
    newer = a if a.incarnation > b.incarnation else b
    assert merge(a, b) == newer


@given(st.integers(0, 10), statuses, statuses)
def test_at_equal_incarnation_the_stronger_status_wins(inc: int, s1: Status, s2: Status) -> None:
    a = Member("x", ("h", 1), inc, s1)
    b = Member("x", ("h", 1), inc, s2)
    assert merge(a, b).status == max(s1, s2)
    assert precedence(merge(a, b)) >= precedence(a)


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

