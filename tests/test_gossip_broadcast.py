"""The piggyback queue: replacement, retransmit limit, order, size budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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


class _ReferenceQueue:
    """The queue's contract written plainly: entries stepped over one by one
    (the shape the queue had before take() worked on slices)."""

    def __init__(self) -> None:
        self.buckets: dict[int, list[list]] = {}
        self.live: dict[str, list] = {}

    def push(self, node: str, payload: bytes) -> None:
        entry = [node, payload, 0]
        self.live[node] = entry
        self.buckets.setdefault(0, []).append(entry)

    def take(self, budget: int, limit: int, max_count: int = 64) -> list[bytes]:
        if not self.live or budget < 8:
            return []
        out, sent = [], []
        for transmits in sorted(self.buckets):
            lst, skipped = self.buckets[transmits], []
            while lst and len(out) < max_count and len(skipped) <= 8 and budget >= 8:
                entry = lst.pop()
                if self.live.get(entry[0]) is not entry:
                    continue
                if len(entry[1]) > budget:
                    skipped.append(entry)
                    continue
                out.append(entry[1])
                budget -= len(entry[1])
                sent.append(entry)
            lst.extend(reversed(skipped))
            if not lst:
                del self.buckets[transmits]
            if budget < 8 or len(out) >= max_count:
                break
        for entry in sent:
            entry[2] += 1
            if entry[2] >= limit:
                del self.live[entry[0]]
            else:
                self.buckets.setdefault(entry[2], []).append(entry)
        return out


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.sampled_from("abcdefghij"), st.integers(8, 120)),
        st.tuples(st.just("take"), st.integers(0, 400), st.integers(1, 6), st.integers(1, 12)),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_take_sends_what_the_one_by_one_reference_sends(ops: list[tuple]) -> None:
    q, ref = BroadcastQueue(), _ReferenceQueue()
    for i, op in enumerate(ops):
        if op[0] == "push":
            payload = bytes([i % 256]) * op[2]
            q.push(op[1], payload)
            ref.push(op[1], payload)
        else:
            _, budget, limit, max_count = op
            assert q.take(budget, limit, max_count) == ref.take(budget, limit, max_count)
        assert len(q) == len(ref.live)
