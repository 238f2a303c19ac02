"""Building a placement view in slices (mesh.placement.Builder): the same view
as building it at once, whatever the slice size, and each slice a bounded
piece of work, for the largest views a peer can announce."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.ring_stall import SliceClock
from mesh.config import DEFAULT
from mesh.placement import Builder, Member, Placement
from mesh.placement._table import build_table, table_steps

_views = st.dictionaries(st.text(min_size=1, max_size=6), st.integers(1, 300), max_size=24)


@settings(max_examples=150, deadline=None)
@given(view=_views, vnodes=st.sampled_from([1, 3, 64]), max_points=st.sampled_from([40, 4096]),
       replicas=st.integers(1, 9), step=st.sampled_from([1, 5, 64, 4096]))
def test_a_view_built_in_slices_is_the_view_built_at_once(
        view: dict[str, int], vnodes: int, max_points: int, replicas: int, step: int) -> None:
    members = list(view.items())
    whole = Placement([Member(n, w) for n, w in members], vnodes=vnodes, max_points=max_points)
    builder = Builder(members, replicas=replicas, vnodes=vnodes, max_points=max_points,
                      step=step)
    sliced = builder.run()
    assert sliced == whole and sliced._points == whole._points
    for i in range(30):
        for r in sorted({1, 2, 3, replicas}):
            assert sliced.preference_list(f"k{i}", r) == whole.preference_list(f"k{i}", r)
    for rr, table in sliced._tables.items():  # tables built in slices, none left to build
        assert table == build_table(whole._points, rr, whole._shift)


@settings(max_examples=100, deadline=None)
@given(view=_views.filter(bool), rr=st.integers(1, 4), step=st.integers(1, 50))
def test_the_sliced_table_is_the_table(view: dict[str, int], rr: int, step: int) -> None:
    p = Placement([Member(n, w) for n, w in view.items()], vnodes=4)
    rr = min(rr, len(p))
    steps = table_steps(p._points, rr, p._shift, step)
    slices = 0
    while True:
        try:
            next(steps)
            slices += 1
        except StopIteration as done:
            assert done.value == build_table(p._points, rr, p._shift)
            break
    assert slices >= len(p._points) // step  # the work is spread, not done in one slice


def test_builder_errors_are_those_of_placement() -> None:
    with pytest.raises(ValueError, match="duplicate member names"):
        Builder([("a", 1), ("a", 2)]).run()
    with pytest.raises(ValueError, match="weight must be at least 1"):
        Builder([("a", 0)]).run()
    with pytest.raises(ValueError, match="step"):
        Builder([("a", 1)], step=0)
    assert Builder([]).run() == Placement([])


@pytest.mark.parametrize("members", [1_000, 10_000])
def test_each_slice_of_the_largest_views_is_a_few_ms_of_cpu(members: int) -> None:
    """Members announcing the most workers the wire allows: unsliced, one
    build is 40-300 ms in one loop turn here; each slice stays a few ms (CPU
    time, so the other jobs on this shared machine do not count, less any
    cyclic-GC pass; the bound has a wide margin)."""
    view = [(f"fake{i}", DEFAULT.max_workers) for i in range(members)]
    builder = Builder(view)
    with SliceClock() as clock:
        while not clock.call(builder.step):
            pass
    worst = clock.worst
    assert builder.placement is not None
    points = builder.placement.points
    assert points <= DEFAULT.placement_max_points + members
    assert builder.steps >= 2 * points // DEFAULT.placement_build_slice
    assert worst < 0.025, worst
