"""Datasets against plain Python lists, on a real 2-node mesh (one per module).

Hypothesis draws the data and the partition counts; every transformation
and action must give what the same pipeline gives on a list.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import operator
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh import AsyncClient, Client
from mesh.protocol.payload import RemoteTraceback
from tests.procs import Cluster, MeshProc
from tests.test_client_real import start_mesh

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

ints = st.lists(st.integers(-50, 50), max_size=60)
nparts = st.integers(1, 5)
pairs = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "é", ""]), st.integers(-9, 9)),
                 max_size=40)


@pytest.fixture(scope="module")
def mesh2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MeshProc]]:
    cluster = Cluster(tmp_path_factory.mktemp("mesh2"))
    try:
        yield start_mesh(cluster, n=2)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def client(mesh2: list[MeshProc]) -> Iterator[Client]:
    with Client([p.bind for p in mesh2]) as c:
        yield c


def halves(x: int) -> list[int]:
    return [x, x // 2] if x % 3 else []


def running_sums(it: Iterator[int]) -> Iterator[int]:
    total = 0
    for x in it:
        total += x
        yield total


@SETTINGS
@given(data=ints, n=nparts, k=st.integers(0, 8))
def test_narrow_transformations_and_actions_match_python(client: Client, data: list[int],
                                                         n: int, k: int) -> None:
    ds = client.from_sequence(data, npartitions=n)
    assert ds.npartitions == n
    piped = ds.map(lambda x: x * 3).filter(lambda x: x % 2 == 0).flat_map(halves)
    expected = [y for x in data if (x * 3) % 2 == 0 for y in halves(x * 3)]
    assert piped.collect() == expected
    assert piped.count() == len(expected)
    assert piped.sum() == sum(expected)
    assert piped.take(k) == expected[:k]
    assert piped.top(k) == sorted(expected, reverse=True)[:k]
    assert piped.top(k, key=abs) == sorted(expected, key=abs, reverse=True)[:k]
    if expected:
        assert piped.reduce(operator.add) == functools.reduce(operator.add, expected)
    else:
        with pytest.raises(TypeError, match="empty"):
            piped.reduce(operator.add)
    q, r = divmod(len(data), n)  # contiguous, the first r one longer
    bounds = [i * q + min(i, r) for i in range(n + 1)]
    chunks = [data[bounds[i]:bounds[i + 1]] for i in range(n)]
    got = ds.map_partitions(running_sums).collect()
    assert got == [y for c in chunks for y in running_sums(iter(c))]
    assert ds.union(piped).collect() == data + expected
    assert ds.union(piped).npartitions == 2 * n


@SETTINGS
@given(data=pairs, other=pairs, n=nparts, m=st.one_of(st.none(), nparts))
def test_shuffles_match_python(client: Client, data: list, other: list, n: int,
                               m: int | None) -> None:
    ds = client.from_sequence(data, npartitions=n)
    right = client.from_sequence(other, npartitions=max(1, n - 1))
    sums: dict = collections.defaultdict(int)
    groups: dict = collections.defaultdict(list)
    for k, v in data:
        sums[k] += v
        groups[k].append(v)
    reduced = ds.reduce_by_key(operator.add, npartitions=m)
    assert reduced.npartitions == (m or n)
    assert sorted(reduced.collect()) == sorted(sums.items())
    assert {k: sorted(v) for k, v in ds.group_by_key(m).collect()} == {
        k: sorted(v) for k, v in groups.items()}
    assert sorted(ds.count_by_value().collect()) == sorted(collections.Counter(data).items())
    assert sorted(ds.distinct().collect()) == sorted(set(data))
    joined = [(k, (a, b)) for k, a in data for k2, b in other if k == k2]
    assert sorted(ds.join(right).collect()) == sorted(joined)
    assert sorted(ds.repartition(m or 3).collect()) == sorted(data)
    assert ds.repartition(m or 3).npartitions == (m or 3)


texts = st.lists(st.lists(st.sampled_from(["a", "b", "é", "ab", " ", "\t", "\x1c", "\u3000"]),
                          max_size=12).map("".join), max_size=30)


@SETTINGS
@given(lines=texts, n=nparts, m=st.one_of(st.none(), nparts))
def test_counting_word_counts_match_python_and_the_general_path(
        client: Client, lines: list[str], n: int, m: int | None) -> None:
    """``flat_map(str.split).map(lambda w: (w, C)).reduce_by_key(operator.add)``
    and ``count_by_value`` count in C on the map side (``mesh/data/_fuse.py``):
    the same items, in the same order, as the general path (an identity
    ``map`` after the pair turns the fast path off) and as Python."""
    words = client.from_sequence(lines, npartitions=n).flat_map(str.split)
    counts = collections.Counter(w for line in lines for w in line.split())

    def general(pairs):
        return pairs.map(tuple).reduce_by_key(operator.add, m).collect()

    fast = words.map(lambda w: (w, 1)).reduce_by_key(operator.add, m).collect()
    assert fast == general(words.map(lambda w: (w, 1)))
    assert sorted(fast) == sorted(counts.items())
    assert sorted(words.count_by_value().collect()) == sorted(counts.items())
    threes = words.map(lambda w: (w, 3)).reduce_by_key(operator.add, m).collect()
    assert threes == general(words.map(lambda w: (w, 3)))
    mixed = words.map(lambda w: (w, 1)).union(words.map(lambda w: (w, 0.5)))
    got = mixed.reduce_by_key(operator.add, m).collect()
    assert got == general(mixed)
    assert sorted(got) == sorted((w, c + c * 0.5) for w, c in counts.items())


@SETTINGS
@given(data=ints, n=nparts, reverse=st.booleans(), k=st.integers(0, 10),
       by_abs=st.booleans())
def test_sort_by_orders_partitions_and_take_gives_the_first(
        client: Client, data: list[int], n: int, reverse: bool, k: int, by_abs: bool) -> None:
    key = abs if by_abs else None
    s = client.from_sequence(data, npartitions=n).sort_by(key, reverse=reverse)
    expected = sorted(data, key=key, reverse=reverse)
    assert s.collect() == expected
    assert s.take(k) == expected[:k]


def test_read_text_to_text_and_word_count(client: Client, tmp_path: Path) -> None:
    text = "".join(f"w{i % 7} w{i % 3}\r\n" if i % 5 else f"w{i % 11}\n" for i in range(3000))
    (tmp_path / "a.txt").write_text(text, newline="")
    (tmp_path / "b.txt").write_text("x y\nlast line without newline", newline="")
    lines = client.read_text(str(tmp_path / "*.txt"), blocksize=1000)
    assert lines.npartitions == 19 + 1  # 18,655 bytes in blocks of 1,000, and b.txt
    expected_lines = [*text.replace("\r\n", "\n").splitlines(), "x y",
                      "last line without newline"]
    assert lines.collect() == expected_lines
    counts = lines.flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add, 4)
    expected = collections.Counter(w for line in expected_lines for w in line.split())
    assert dict(counts.collect()) == expected
    assert counts.top(3, key=lambda kv: kv[1]) == sorted(
        expected.items(), key=lambda kv: kv[1], reverse=True)[:3]
    out = tmp_path / "out"
    paths = counts.map(lambda kv: f"{kv[0]}\t{kv[1]}").to_text(str(out))
    assert len(paths) == 4
    written = [line.split("\t") for p in paths for line in Path(p).read_text().splitlines()]
    assert {w: int(c) for w, c in written} == expected
    assert "read_text(" in repr(counts) and "reduce_by_key(add, npartitions=4)" in repr(counts)


def test_read_text_raises_for_a_path_that_matches_nothing(client: Client,
                                                           tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing-*.txt")
    with pytest.raises(FileNotFoundError, match="nothing-"):
        client.read_text(missing)
    (tmp_path / "one.txt").write_text("1\n")
    with pytest.raises(FileNotFoundError, match=r"two\.txt"):
        client.read_text([str(tmp_path / "one.txt"), str(tmp_path / "two.txt")])


def test_a_raising_function_names_the_partition_and_keeps_the_traceback(
        client: Client) -> None:
    ds = client.from_sequence(range(20), npartitions=4).map(lambda x: 1 // (x - 13))
    with pytest.raises(ZeroDivisionError) as info:
        ds.count()
    assert any("partition 2 of 4" in note for note in info.value.__notes__)
    assert isinstance(info.value.__cause__, RemoteTraceback)


def test_a_function_raising_on_either_side_of_a_shuffle_names_its_partition(
        client: Client) -> None:
    ds = client.from_sequence(range(20), npartitions=4)
    before = ds.map(lambda x: (x % 3, 1 // (x - 13)))  # raises in map partition 2
    with pytest.raises(ZeroDivisionError) as info:
        before.reduce_by_key(operator.add, 3).collect()
    assert any("partition 2 of 4 of reduce_by_key(add, npartitions=3)" in note
               for note in info.value.__notes__), info.value.__notes__
    assert isinstance(info.value.__cause__, RemoteTraceback)

    def picky(a: int, b: int) -> int:
        if a + b > 150:
            raise OverflowError(f"too big: {a} + {b}")
        return a + b

    with pytest.raises(OverflowError) as info:  # raises on the reduce side too
        ds.map(lambda x: (0, x)).reduce_by_key(picky, 2).collect()  # 85 at most per map
    assert any(note.endswith(f"of 2 of reduce_by_key({picky.__qualname__}, npartitions=2)")
               for note in info.value.__notes__), info.value.__notes__
    assert "too big" in str(info.value) and isinstance(info.value.__cause__, RemoteTraceback)


def test_an_unhashable_key_in_reduce_by_key_names_its_type(client: Client) -> None:
    ds = client.from_sequence([({"a": 1}, 1)]).reduce_by_key(operator.add)
    with pytest.raises(TypeError, match="key of type dict is unhashable"):
        ds.collect()


def test_bad_arguments_fail_when_called(client: Client) -> None:
    ds = client.from_sequence(range(3))
    with pytest.raises(TypeError, match="map: f must be callable"):
        ds.map(3)
    with pytest.raises(ValueError, match="npartitions must be at least 1"):
        client.from_sequence(range(3), npartitions=0)
    with pytest.raises(ValueError, match="data"):
        client.from_sequence([b"x" * (5 << 20)])


def test_persist_keeps_partitions_and_reuses_them(client: Client) -> None:
    import uuid

    ds = client.from_sequence(range(8), npartitions=2).map(lambda x: (x, uuid.uuid4().hex))
    kept = ds.persist()
    first = kept.collect()
    assert kept.collect() == first  # read back, not recomputed
    assert kept.map(lambda kv: kv[0]).sum() == 28
    assert kept.npartitions == 2 and "persisted(" in repr(kept)


def test_every_action_is_awaitable_on_an_async_client(mesh2: list[MeshProc],
                                                      tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncClient([p.bind for p in mesh2]) as ac:
            ds = ac.from_sequence(range(10), npartitions=3)
            assert await ds.collect() == list(range(10))
            assert await ds.count() == 10
            assert await ds.sum() == 45
            assert await ds.reduce(operator.mul) == 0
            assert await ds.take(2) == [0, 1]
            assert await ds.top(2) == [9, 8]
            assert len(await ds.to_text(str(tmp_path / "o"))) == 3
            kept = await ds.map(lambda x: (x % 2, x)).reduce_by_key(operator.add).persist()
            assert sorted(await kept.collect()) == [(0, 20), (1, 25)]
            (tmp_path / "t.txt").write_text("a b\nb\n")
            assert await ac.read_text(str(tmp_path / "t.txt")).flat_map(str.split).count() == 3

    asyncio.run(main())
