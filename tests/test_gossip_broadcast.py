"""The piggyback queue: replacement, retransmit limit, order, size budget."""

from __future__ import annotations

from mesh.gossip._broadcast import BroadcastQueue


def test_a_newer_update_about_a_member_replaces_the_queued_one() -> None:
    q = BroadcastQueue()
    q.push("a", b"old")
    q.push("a", b"new")
    assert len(q) == 1
    assert q.take(100, limit=5) == [b"new"]


def test_each_update_is_sent_exactly_limit_times() -> None:
    q = BroadcastQueue()
    q.push("a", b"x" * 10)
    sent = sum(len(q.take(100, limit=3)) for _ in range(10))
    assert sent == 3 and len(q) == 0


def test_least_transmitted_updates_go_first_newest_first_among_equals() -> None:
    a, b, c = b"a" * 10, b"b" * 10, b"c" * 10
    q = BroadcastQueue()
    q.push("a", a)
    q.push("b", b)
    assert q.take(10, limit=9) == [b]  # budget for one: the newest
    q.push("c", c)
    assert q.take(20, limit=9) == [c, a]  # never sent, before b's second time
    # all three sent once now: the most recently sent go first
    assert q.take(30, limit=9) == [a, c, b]


def test_take_respects_the_byte_budget_and_skips_to_a_smaller_update() -> None:
    q = BroadcastQueue()
    q.push("small", b"s" * 10)
    q.push("big", b"b" * 100)
    assert q.take(50, limit=5) == [b"s" * 10]
    assert len(q) == 2  # the big one is still queued, untransmitted
    assert q.take(200, limit=5) == [b"b" * 100, b"s" * 10]
