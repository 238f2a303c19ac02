"""The counting fast path of a combining shuffle (``mesh/data/_fuse.py``): what
it recognises, and that its map output equals the general path's, item for
item and error for error."""

from __future__ import annotations

import functools
import operator
import pickle
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.data import _actions as A
from mesh.data import _fuse as F
from mesh.data import _shuffle as S
from mesh.data._plan import Part, run_part
from mesh.data._text import read_block

K = 2


def def_pair(x):
    return (x, -3)


def gen_pair(x):
    yield (x, 1)


def closure_pair(k):
    return lambda w: (w, k)


@pytest.mark.parametrize("f, value", [
    (lambda w: (w, 1), 1), (lambda word: (word, 7), 7), (def_pair, -3), (A.one_pair, 1),
    (lambda w: (w, 0), 0), (lambda w: (w, 10**30), 10**30)])
def test_a_function_returning_its_argument_and_an_int_constant_is_recognised(f, value) -> None:
    assert F.constant_pair(f) == value


@pytest.mark.parametrize("f", [
    lambda w: (w, 1.0), lambda w: (w, True), lambda w: (1, w), lambda w: (w, w),
    lambda w: (w, "1"), lambda w: [w, 1], lambda w: (w, 1, 1), lambda w: (w, K),
    closure_pair(1), lambda w, x=1: (w, 1), lambda w, *a: (w, 1), lambda w, **k: (w, 1),
    lambda w, *, k=1: (w, 1), lambda w: print(w) or (w, 1), gen_pair, A.none_pair, len,
    functools.partial(def_pair), str.split, object()])
def test_anything_else_is_not(f) -> None:
    assert F.constant_pair(f) is None


def _part(source=read_block, ops=()) -> Part:
    return Part(source, ("path", 0, 1, "utf-8"), tuple(ops))


PAIR = ("map", lambda w: (w, 1))
SPLIT = ("flat_map", str.split)


@pytest.mark.parametrize("part, create, merge, expected", [
    (_part(ops=[SPLIT, PAIR]), A.identity, operator.add, ((SPLIT,), 1)),
    (_part(ops=[("filter", bool), SPLIT, PAIR]), A.identity, operator.add,
     ((("filter", bool), SPLIT), 1)),
    (_part(ops=[PAIR]), A.identity, operator.add, ((), 1)),  # a read_text block's lines
    (_part(source=A.identity, ops=[PAIR]), A.identity, operator.add, None),  # items unknown
    (_part(ops=[("flat_map", str.rsplit), PAIR]), A.identity, operator.add, None),
    (_part(ops=[SPLIT, ("map", str.lower), PAIR]), A.identity, operator.add, None),
    (_part(ops=[SPLIT, PAIR, ("filter", bool)]), A.identity, operator.add, None),
    (_part(ops=[SPLIT, ("map", lambda w: (w, 1.0))]), A.identity, operator.add, None),
    (_part(ops=[SPLIT, PAIR]), A.identity, lambda a, b: a + b, None),
    (_part(ops=[SPLIT, PAIR]), A.identity, operator.mul, None),
    (_part(ops=[SPLIT, PAIR]), A.singleton, A.append, None),
    (_part(ops=[]), A.identity, operator.add, None),
])
def test_counting_applies_only_to_str_items_paired_with_an_int_and_added(
        part: Part, create, merge, expected) -> None:
    got, value = F.counting(part, create, merge)
    if expected is None:
        assert (got, value) == (part, None)
    else:
        assert (got.source, got.args, got.ops, value) == (part.source, part.args, *expected)


SPACES = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000"
texts = st.lists(st.sampled_from(["a", "b", "é", "ß", "x1", "\r\n", *SPACES]),
                 max_size=120).map("".join)
OPS = {"split": (SPLIT,), "filter, split": (("filter", lambda line: "b" not in line), SPLIT),
       "lines": ()}


def run_path(part: Part, value: int, n: int, fast: bool) -> list:
    """The unpickled blocks of a map task of ``part`` then ``map(lambda w: (w,
    value))`` then ``reduce_by_key(operator.add)``, by the fast or general path."""
    c = S.Combiner(A.identity, operator.add, operator.add, "reduce_by_key")
    pair = eval(f"lambda w: (w, {value})")  # a constant, not a closure's cell
    p = Part(part.source, part.args, (*part.ops, ("map", pair)))
    count = None
    if fast:
        p, count = F.counting(p, c.create, c.merge_value)
        assert count == value
    out = run_part(p.source, p.args, p.ops, S.split_combined, (c, n, count), "partition 0")
    blocks = [pickle.loads(b) for b in out]
    assert {ints for _, _, ints in blocks} == {fast}  # a counted block says so
    return [(keys, values) for keys, values, _ in blocks]


@settings(max_examples=200, deadline=None)
@given(text=texts, cut=st.integers(0, 200), ops=st.sampled_from(sorted(OPS)),
       value=st.sampled_from([1, 2, 0, -5]), n=st.integers(1, 5))
def test_the_fast_path_gives_the_general_paths_blocks(text: str, cut: int, ops: str,
                                                      value: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "t.txt")
        path.write_text(text, encoding="utf-8", newline="")
        size = path.stat().st_size
        for start, end in ((0, size), (0, min(cut, size)), (min(cut, size), size)):
            part = Part(read_block, (str(path), start, end, "utf-8"), OPS[ops])
            general, fast = (run_path(part, value, n, f) for f in (False, True))
            assert fast == general
            assert {type(v) for _, vs in fast for v in vs} <= {int}


def not_a_line(line: str) -> object:
    return 7 if "b" in line else line


def raising(line: str) -> str:
    if "b" in line:
        raise TypeError("the user's own")
    return line


@pytest.mark.parametrize("fn", [not_a_line, raising])
def test_an_error_in_the_chain_is_the_same_on_both_paths(fn, tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("a a\nb c\n")
    part = Part(read_block, (str(path), 0, 8, "utf-8"), (("map", fn), SPLIT))
    errors = []
    for fast in (False, True):
        with pytest.raises(TypeError) as info:
            run_path(part, 1, 2, fast)
        errors.append((type(info.value), str(info.value), info.value.__notes__))
    assert errors[0] == errors[1]
    assert "partition 0" in errors[0][2][0]


class RecordingClient:
    """Enough of a client for an action to plan: it records what is submitted."""

    class _Core:
        client_id = "rec"

    def __init__(self) -> None:
        self._core = self._Core()
        self.calls: list[tuple] = []

    def submit(self, fn, *args, key: str):
        self.calls.append((fn, args, key))
        return key

    def gather(self, futs):
        raise RuntimeError("planned only")


@pytest.mark.parametrize("build, count", [
    (lambda lines: lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add),
     1),
    (lambda lines: lines.flat_map(str.split).count_by_value(), 1),
    (lambda lines: lines.map(lambda line: (line, 2)).reduce_by_key(operator.add, 3), 2),
    (lambda lines: lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(max), None),
    (lambda lines: lines.flat_map(lambda s: s.split()).count_by_value(), None),
])
def test_the_api_plans_the_seeds_word_count_as_a_count(build, count, tmp_path: Path) -> None:
    from mesh.data import read_text

    (tmp_path / "t.txt").write_text("a b\nc\n" * 10)
    client = RecordingClient()
    with pytest.raises(RuntimeError, match="planned only"):
        build(read_text(client, str(tmp_path / "t.txt"), blocksize=16)).collect()
    maps = [args for fn, args, key in client.calls if key.startswith("data-map")]
    assert len(maps) == 4  # one per 16-byte block
    for _source, _args, ops, tail, tail_args, _label in maps:
        assert tail is S.split_combined and tail_args[2] == count
        assert (count is None) == (bool(ops) and ops[-1][0] == "map")  # the pair is gone
