"""Push-pull tables merged in slices (mesh.gossip._merge): no table costs a
loop turn more than one slice, and a sliced merge ends in the state an
unsliced one reaches, whatever gossip arrives while slices are pending."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.config import Config
from mesh.gossip import Membership, Status
from mesh.gossip._messages import Alive, Dead, Ping, Suspect, compound, encode

ME = "me"
NAMES = [ME] + [f"n{i}" for i in range(4)]
SLICE = 2


def addr(name: str) -> tuple[str, int]:
    return ("10.0.0.1", 7000 + NAMES.index(name))


def core(slice_rows: int, **extra: Any) -> Membership:
    cfg = Config().with_(push_pull_merge_slice=slice_rows, **extra)
    return Membership(ME, addr(ME), cfg, random.Random(7), 0.0)


def body(*msgs: Any) -> list[Any]:
    return msgpack.unpackb(compound([encode(m) for m in msgs]))


def table(rows: list[tuple[str, int, int, dict[str, Any]]]) -> list[list[Any]]:
    """A table as msgpack decodes one: name, host, port, incarnation, status, meta."""
    return [[n, *addr(n), inc, status, meta] for n, inc, status, meta in rows]


def big_table(n: int, inc: int = 0, status: int = 0) -> list[list[Any]]:
    return [[f"m{i:05d}", "10.1.0.1", 1000 + i, inc, status, {"zone": "a"}] for i in range(n)]


def state(m: Membership) -> tuple[Any, ...]:
    return (m.members(), sorted(n for n in NAMES if n in m._suspicions), m.num_live())


# --------------------------------------------------------------------- slices
def test_a_big_table_is_merged_one_slice_per_tick_and_each_tick_does_at_most_a_slice() -> None:
    m = core(256, max_members=20_000)
    m.merge_remote(big_table(4000), 0.0)
    assert m.merges.phase == "checking" and len(m.members()) == 1  # nothing applied yet
    assert m.next_deadline() == 0.0  # the driver runs the next slice at once
    ticks = 0
    while m.merges:
        m.tick(0.0)
        ticks += 1
        assert len(m.drain_events()) <= 256
    assert ticks == 2 * 16  # 16 slices of checks (4000 / 256, rounded up), 16 of applying
    assert len(m.members()) == 4001 and m.num_live() == 4001
    [report] = m.merges.drain()
    assert report.changes == {"join": 4000} and report.slices == ticks
    assert "4000 rows, 4000 join" in report.describe()


def test_a_table_that_fits_one_slice_is_merged_at_once() -> None:
    m = core(256)
    m.merge_remote(big_table(256), 0.0)
    assert not m.merges and len(m.members()) == 257
    events = m.drain_events()
    assert len(events) == 256 and all(e.merged for e in events)
    assert [r.news for r in m.merges.drain()] == [256]


def test_a_bad_row_in_the_last_slice_drops_the_whole_table() -> None:
    m = core(100)
    rows = big_table(1000)
    rows[-1][3] = -1  # a negative incarnation
    m.merge_remote(rows, 0.0)
    while m.merges:
        m.tick(0.0)
    assert len(m.members()) == 1 and not m.drain_events()
    [report] = m.merges.drain()
    assert report.error is not None and report.error.reason == "malformed"
    assert "dropped a push-pull table" in report.describe()


def test_a_member_learned_from_an_applied_slice_is_not_rolled_back_by_a_later_table() -> None:
    m = core(100)
    first = big_table(1000, inc=5)
    m.merge_remote(first, 0.0)
    m.merge_remote(big_table(1000, inc=3, status=Status.DEAD), 0.0)  # older news, queued
    while m.merges.phase != "applying":
        m.tick(0.0)
    m.tick(0.0)  # the first slice of rows (m00000...m00099) is applied
    assert m.get("m00000").incarnation == 5
    while m.merges:
        m.tick(0.0)
    assert all(x.incarnation == 5 and x.status is Status.ALIVE
               for x in m.members() if x.name != ME)


def test_gossip_about_a_member_with_a_pending_row_applies_that_row_first() -> None:
    m = core(100)
    m.merge_remote(big_table(1000, inc=5), 0.0)
    while m.merges.phase != "applying":
        m.tick(0.0)
    # m00999's row (incarnation 5) is still pending: a suspicion at 5 must
    # find it alive at 5 (as if the table were merged) and suspect it
    m.receive(body(Suspect(5, "m00999", "m00001")), ("10.1.0.1", 1001), 0.0)
    assert m.get("m00999").status is Status.SUSPECT
    while m.merges:
        m.tick(0.0)
    assert m.get("m00999").status is Status.SUSPECT  # its row was not applied twice


def test_a_refutation_raced_by_a_pending_row_about_us_still_wins() -> None:
    m = core(100)
    rows = [*big_table(999), [ME, *addr(ME), 0, int(Status.SUSPECT), {}]]
    m.merge_remote(rows, 0.0)
    while m.merges.phase != "applying":
        m.tick(0.0)
    m.leave(0.0)  # our own row (a suspicion of us) is applied first: we refute, then leave
    assert m.local.incarnation == 1 and m.local.status is Status.LEFT


def test_tables_beyond_the_ones_held_are_shed_and_counted() -> None:
    m = core(100, push_pull_merges_held=2)
    for _ in range(3):
        m.merge_remote(big_table(1000), 0.0)
    assert m.metrics.snapshot().get("gossip_push_pull_shed") == 1


def test_the_log_line_of_a_small_merge_names_its_members() -> None:
    m = core(100)
    m.merge_remote(table([("n1", 0, 0, {})]), 0.0)  # a joiner's own table
    [report] = m.merges.drain()
    assert report.describe().endswith(": member n1 join at 10.0.0.1:7002 (incarnation 0)")


# --------------------------------------------------------------- the reference
row = st.tuples(st.sampled_from(NAMES), st.integers(0, 3), st.integers(0, 3),
                st.sampled_from([{}, {"zone": "a"}]))
tables = st.lists(row, min_size=0, max_size=14)
event = st.one_of(
    st.tuples(st.just("alive"), st.sampled_from(NAMES), st.integers(0, 4),
              st.sampled_from([{}, {"zone": "b"}])),
    st.tuples(st.just("suspect"), st.sampled_from(NAMES), st.integers(0, 4),
              st.sampled_from(NAMES)),
    st.tuples(st.just("dead"), st.sampled_from(NAMES), st.integers(0, 4),
              st.sampled_from(NAMES)),
    st.tuples(st.just("ping"), st.integers(1, 9)),
    st.tuples(st.just("tick")),
    st.tuples(st.just("tick")),  # twice as likely: slices run between the gossip
    st.tuples(st.just("pushpull"), tables, st.booleans()),
)


def message(ev: tuple[Any, ...]) -> Any:
    kind, name, inc, extra = ev
    if kind == "alive":
        return Alive(inc, name, addr(name), extra)
    return (Suspect if kind == "suspect" else Dead)(inc, name, extra)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=tables, first=st.lists(row, min_size=4, max_size=14), bootstrap=st.booleans(),
       events=st.lists(event, max_size=30))
def test_a_sliced_merge_ends_where_an_unsliced_merge_at_its_check_ends(
    start: list, first: list, bootstrap: bool, events: list,
) -> None:
    """The reference applies each table at once at the moment the sliced
    node finished checking it (``merges.checked`` grows), and sees the same
    gossip in the same order: every member, every open suspicion and every
    member event must agree once the slices are done."""
    sliced, ref = core(SLICE, push_pull_merges_held=2), core(10_000)
    seen: Counter[Any] = Counter()
    ref_seen: Counter[Any] = Counter()
    for m in (sliced, ref):
        m.merge_remote(table(start), 0.0)
        m.merges.finish(0.0)
    waiting: list[tuple[list, bool]] = []  # large tables, in the order they merge

    def push_pull(got: list, boot: bool) -> None:
        """A table that fits a slice merges at once (the reference too);
        a large one waits in line (or is shed)."""
        shed = sliced.metrics.snapshot().get("gossip_push_pull_shed", 0)
        before = sliced.merges.checked
        sliced.merge_remote(got, 0.0, bootstrap=boot)
        if sliced.merges.checked == before + 1:  # merged at once
            ref.merge_remote(got, 0.0, bootstrap=boot)
            ref_count[0] += 1
        elif sliced.metrics.snapshot().get("gossip_push_pull_shed", 0) == shed:
            waiting.append((got, boot))

    ref_count = [1]  # tables the reference merged (its start table included)

    def catch_up() -> None:
        while ref_count[0] < sliced.merges.checked:
            got, boot = waiting.pop(0)
            ref.merge_remote(got, 0.0, bootstrap=boot)
            ref_count[0] += 1
        seen.update((e.kind, e.member) for e in sliced.drain_events())
        ref_seen.update((e.kind, e.member) for e in ref.drain_events())

    push_pull(table(first), bootstrap)
    catch_up()
    for ev in events:
        if ev[0] == "tick":
            sliced.tick(0.0)
            catch_up()
            ref.tick(0.0)
        elif ev[0] == "pushpull":
            push_pull(table(ev[1]), ev[2])
        else:
            msg = Ping(ev[1], ME) if ev[0] == "ping" else message(ev)
            sliced.receive(body(msg), addr("n1"), 0.0)
            catch_up()
            ref.receive(body(msg), addr("n1"), 0.0)
        catch_up()
    while sliced.merges:
        sliced.tick(0.0)
        catch_up()
        ref.tick(0.0)
    catch_up()
    assert state(sliced) == state(ref)
    assert seen == ref_seen
