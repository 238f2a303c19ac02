"""The set of open suspicions answers like a scan over all of them would."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.gossip._suspicion import Suspicion, Suspicions

_names = st.sampled_from(["a", "b", "c", "d", "e"])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("start"), _names, st.integers(0, 4)),
        st.tuples(st.just("confirm"), _names, st.sampled_from(["x", "y", "z", "w"])),
        st.tuples(st.just("pop"), _names),
        st.tuples(st.just("expire"), st.floats(0, 3)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_next_deadline_and_expiry_match_a_scan_of_every_suspicion(ops: list[tuple]) -> None:
    sus, plain = Suspicions(), {}
    now = 0.0
    for op in ops:
        if op[0] == "start":
            s = Suspicion(now, "accuser", op[2], 1.0, 6.0)
            sus.start(op[1], s)
            plain[op[1]] = s
        elif op[0] == "confirm":
            sus.confirm(op[1], op[2])
        elif op[0] == "pop":
            assert sus.pop(op[1]) is plain.pop(op[1], None)
        else:
            now += op[1]
            due = sorted(n for n, s in plain.items() if s.deadline <= now)
            assert sus.expired(now) == due
            for name in due:  # the caller declares them dead
                sus.pop(name)
                del plain[name]
        assert sus.next_deadline() == min((s.deadline for s in plain.values()), default=math.inf)
        assert len(sus) == len(plain)


def test_a_confirmation_brings_the_next_deadline_forward() -> None:
    sus = Suspicions()
    sus.start("a", Suspicion(0.0, "x", 3, 1.0, 6.0))
    before = sus.next_deadline()
    assert sus.confirm("a", "y")
    assert sus.next_deadline() < before
    assert not sus.confirm("a", "y")  # the same confirmer twice counts once


def test_a_confirmation_never_moves_the_deadline_before_its_floor_nor_later() -> None:
    s = Suspicion(0.0, "a", k=2, min_timeout=4.0, max_timeout=24.0)
    assert s.deadline == 24.0
    assert s.confirm("b", not_before=20.5)  # the shrunk timer (11.4 s) is past
    assert s.deadline == 20.5
    t = Suspicion(0.0, "a", k=2, min_timeout=4.0, max_timeout=24.0)
    assert t.confirm("b", not_before=5.0)
    assert math.isclose(t.deadline, 24.0 - math.log(2) / math.log(3) * 20.0)
    before = t.deadline
    assert t.confirm("c", not_before=before + 1.0)  # a floor never postpones it
    assert t.deadline == before
    u = Suspicion(0.0, "a", k=2, min_timeout=4.0, max_timeout=24.0)
    assert u.confirm("b") and u.confirm("c", not_before=5.0)
    assert u.deadline == 5.0  # k confirmations: the minimum, or the floor if later
