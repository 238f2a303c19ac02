"""Placement rebalancing: diff, Move, repair_targets."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.placement import Member, Move, Placement, diff, repair_targets

FAST = settings(max_examples=40, deadline=None)

names_st = st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=4)
view_st = st.lists(names_st, min_size=0, max_size=10, unique=True)
KEYS = [f"task-{i}" for i in range(150)]


@FAST
@given(view_st, view_st, st.integers(1, 4))
def test_diff_reports_exactly_the_keys_whose_list_changed(a, b, r):
    old, new = Placement(a), Placement(b)
    moves = diff(old, new, KEYS, r)
    changed = [k for k in KEYS if old.preference_list(k, r) != new.preference_list(k, r)]
    assert [m.key for m in moves] == changed
    for m in moves:
        assert m.old_prefs == old.preference_list(m.key, r)
        assert m.new_prefs == new.preference_list(m.key, r)


@FAST
@given(view_st, view_st, st.integers(1, 4))
def test_moves_name_surviving_holders_as_sources_and_new_holders_as_targets(a, b, r):
    old, new = Placement(a), Placement(b)
    for m in diff(old, new, KEYS, r):
        assert m.sources == tuple(n for n in m.old_prefs if n in set(b))
        assert m.targets == tuple(n for n in m.new_prefs if n not in m.old_prefs)
        # every new holder either already holds a copy or is sent one
        assert set(m.new_prefs) <= set(m.sources) | set(m.targets)
        assert set(m.released) == set(m.sources) - set(m.new_prefs)
        assert m.lost == (bool(m.old_prefs) and not m.sources)
        assert m.targets == repair_targets(m.key, old, new, r)
        assert m.owner_changed == (m.old_owner != m.new_owner)


@FAST
@given(view_st.filter(bool), names_st, st.integers(1, 4))
def test_a_join_sends_copies_only_to_the_joiner_and_loses_nothing(a, joiner, r):
    a = [n for n in a if n != joiner] or ["solo"]
    old, new = Placement(a), Placement([*a, joiner])
    for m in diff(old, new, KEYS, r):
        assert m.targets == (joiner,)
        assert m.sources == m.old_prefs
        assert not m.lost


@FAST
@given(view_st.filter(lambda v: len(v) >= 2), st.data(), st.integers(1, 4))
def test_a_leave_copies_from_survivors_to_the_next_member_in_line(a, data, r):
    leaver = data.draw(st.sampled_from(a))
    old = Placement(a)
    new = Placement([n for n in a if n != leaver])
    moves = diff(old, new, KEYS, r)
    assert all(leaver in m.old_prefs for m in moves)
    for m in moves:
        assert m.sources == tuple(n for n in m.old_prefs if n != leaver)
        # only the member that moves up into the last place needs a copy
        assert len(m.targets) <= 1
        assert m.new_prefs[: len(m.sources)] == m.sources
        assert m.owner_changed == (m.old_owner == leaver)


def test_losing_every_holder_is_reported_as_lost():
    names = [f"n{i}" for i in range(6)]
    old = Placement(names)
    key = "task-lost"
    holders = old.preference_list(key, 2)
    new = Placement([n for n in names if n not in holders])
    (move,) = diff(old, new, [key], 2)
    assert move.lost and move.sources == ()
    assert move.targets == new.preference_list(key, 2)


def test_weight_change_moves_keys_only_towards_the_heavier_member():
    names = [f"n{i}" for i in range(8)]
    old = Placement(names)
    new = Placement([Member(n, 4 if n == "n3" else 1) for n in names])
    moves = diff(old, new, [f"task-{i}" for i in range(2000)], 3)
    assert moves, "a fourfold weight must move some keys"
    assert all(m.targets in ((), ("n3",)) for m in moves)
    assert all(m.new_owner in (m.old_owner, "n3") for m in moves)


def test_an_unchanged_view_moves_nothing():
    view = Placement(["a", "b", "c"])
    assert diff(view, Placement(["c", "b", "a"]), KEYS, 3) == []
    assert repair_targets("k", view, view, 3) == ()


def test_views_with_different_probe_counts_are_compared_key_by_key():
    a = Placement(["a", "b", "c", "d"], probes=8)
    b = Placement(["a", "b", "c", "d"], probes=1)
    moves = diff(a, b, KEYS, 2)
    assert moves
    for m in moves:
        assert m.old_prefs == a.preference_list(m.key, 2)
        assert m.new_prefs == b.preference_list(m.key, 2)


def test_move_is_a_frozen_slotted_value():
    m = Move("k", ("a", "b"), ("c", "a"), ("a", "b"), ("c",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.key = "x"  # type: ignore[misc]
    assert not hasattr(m, "__dict__")
    assert m.released == ("b",)
    assert m.owner_changed and m.old_owner == "a" and m.new_owner == "c"
    with pytest.raises(ValueError):
        diff(Placement(["a"]), Placement(["b"]), ["k"], 0)
