"""The shuffle's map and reduce sides as plain functions (no mesh): a sort's
range split is a stable sort and spreads a hot key; a combining split sends
each key once per map task; bad items get errors that name them."""

from __future__ import annotations

import itertools
import operator
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.data import _actions as A
from mesh.data import _shuffle as S


def sort_pipeline(xs: list, key, reverse: bool, m: int, n: int) -> tuple[list, list[int]]:
    """What ``from_sequence(xs, m).sort_by(key, reverse, n)`` runs, in process:
    the items in output order, and each output partition's length."""
    parts = [xs[i * len(xs) // m:(i + 1) * len(xs) // m] for i in range(m)]
    cuts = S.boundaries([S.sample_keys(p, key, 20, i) for i, p in enumerate(parts)], n)
    outs = [S.split_range(p, key, cuts, n, reverse, i, m) for i, p in enumerate(parts)]
    blocks = [S.sorted_block(j, outs, key, reverse) for j in range(n)]
    return list(itertools.chain.from_iterable(blocks)), [len(b) for b in blocks]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.just(5), st.integers(-20, 20)), max_size=120),
       st.sampled_from([None, abs, lambda x: x % 3]), st.booleans(),
       st.integers(1, 7), st.integers(1, 7))
def test_a_range_split_sort_equals_a_stable_sort(xs: list[int], key, reverse: bool,
                                                 m: int, n: int) -> None:
    got, _ = sort_pipeline(xs, key, reverse, m, n)
    assert got == sorted(xs, key=key, reverse=reverse)


@pytest.mark.parametrize("reverse", [False, True])
def test_a_hot_key_in_a_sort_spreads_over_the_ranges_it_fills(reverse: bool) -> None:
    xs = [(i * 7919) % 1000 if i % 5 < 2 else 500 for i in range(20_000)]  # 60% are 500
    got, sizes = sort_pipeline(xs, None, reverse, 16, 8)
    assert got == sorted(xs, reverse=reverse)
    assert max(sizes) < 0.25 * len(xs), sizes  # not 60% in one range


def test_a_combining_split_sends_each_key_once_per_map_task() -> None:
    items = [("hot", 1)] * 50_000 + [(f"k{i}", 1) for i in range(1000)]
    c = S.Combiner(A.identity, operator.add, operator.add, "reduce_by_key")
    blocks = [pickle.loads(b) for b in S.split_combined(iter(items), c, 4)]
    pairs = [kv for keys, values, _ in blocks for kv in zip(keys, values, strict=True)]
    assert len(pairs) == 1001 and dict(pairs)["hot"] == 50_000
    group = S.Combiner(A.singleton, A.append, A.extend, "group_by_key")
    merged = dict(S.merge_combined(group, 0, [S.split_combined(iter(items[:10]), group, 1)]))
    assert merged == {"hot": [1] * 10}


@pytest.mark.parametrize("create, merge", [(A.identity, operator.add),
                                           (A.identity, operator.mul),
                                           (A.singleton, A.append)])
def test_bad_items_are_named_and_the_users_errors_pass_through(create, merge) -> None:
    c = S.Combiner(create, merge, merge, "reduce_by_key")
    with pytest.raises(TypeError, match="key of type list is unhashable"):
        S.combine(iter([("a", 1), (["x"], 1)]), c)
    with pytest.raises(TypeError, match=r"items must be \(key, value\) pairs, not int"):
        S.combine(iter([("a", 1), 7]), c)

    def raising():
        yield ("a", 1)
        raise TypeError("the user's own")

    with pytest.raises(TypeError, match="the user's own"):
        S.combine(raising(), c)


values = st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.dictionaries(st.sampled_from("abcdefg"), values)),
                max_size=6))
def test_merging_counted_and_general_blocks_equals_the_general_loop(
        blocks: list[tuple[bool, dict]]) -> None:
    """A counted block (exact ints, merged in C) among general ones: the same
    values, of the same types, keys in the same order as adding pair by pair."""
    outputs, expected = [], {}
    for counted, d in blocks:
        if counted:
            d = {k: int(v) for k, v in d.items()}
        outputs.append([pickle.dumps((list(d), list(d.values()), counted))])
        for k, v in d.items():
            expected[k] = expected[k] + v if k in expected else v
    c = S.Combiner(A.identity, operator.add, operator.add, "reduce_by_key")
    got = list(S.merge_combined(c, 0, outputs))
    assert got == list(expected.items())
    assert [type(v) for _, v in got] == [type(v) for v in expected.values()]
