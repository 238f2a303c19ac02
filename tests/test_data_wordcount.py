"""The seed's word count on a real 3-node mesh, and through a kill -9.

Also pins down that keys go to partitions by a hash that is the same in
every process (``hash()`` of a str is salted per process)."""

from __future__ import annotations

import collections
import concurrent.futures
import operator
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mesh import Client
from mesh.data import partition_of
from tests.procs import REPO, Cluster, api, wait_until
from tests.test_client_real import start_mesh


def write_corpus(path: Path, lines: int, seed: int) -> collections.Counter:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(500)]
    text = "\n".join(" ".join(rng.choices(words, k=rng.randrange(12))) for _ in range(lines))
    path.write_text(text + "\n")
    return collections.Counter(text.split())


def word_count(client: Client, path: Path, blocksize: int, slow: float = 0.0) -> dict:
    def split(line: str) -> list[str]:
        return line.split()

    def pause(it):  # type: ignore[no-untyped-def]
        time.sleep(slow)
        return it

    lines = client.read_text(str(path), blocksize=blocksize)
    if slow:
        lines = lines.map_partitions(pause)
    counts = lines.flat_map(split).map(lambda w: (w, 1)).reduce_by_key(operator.add, 6)
    return dict(counts.collect())


def test_word_count_on_three_nodes_equals_counter(cluster: Cluster, tmp_path: Path) -> None:
    expected = write_corpus(tmp_path / "corpus.txt", 20_000, seed=1)
    nodes = start_mesh(cluster, 3)
    with Client([p.bind for p in nodes]) as client:
        got = word_count(client, tmp_path / "corpus.txt", blocksize=20_000)
        assert got == expected
        top = client.read_text(str(tmp_path / "corpus.txt"), blocksize=50_000).flat_map(
            str.split).count_by_value().top(5, key=lambda kv: kv[1])
        assert [c for _, c in top] == [c for _, c in expected.most_common(5)]


def test_kill_9_of_a_node_mid_word_count_still_counts_exactly(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    expected = write_corpus(tmp_path / "corpus.txt", 20_000, seed=2)
    nodes = start_mesh(cluster, 3)
    victim = nodes[2]
    with Client([p.bind for p in nodes[:2]]) as client, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        before = sum(api(p.addr, "/v1/exec/stats")["completed"] for p in nodes)
        job = pool.submit(word_count, client, tmp_path / "corpus.txt", 4_000, 0.15)

        def some_done() -> bool:
            now = sum(api(p.addr, "/v1/exec/stats")["completed"] for p in nodes)
            return now - before >= 6

        wait_until(some_done, 60, "the word count to be under way")
        assert not job.done()
        victim.popen.kill()
        victim.popen.wait(10)
        assert job.result(timeout=120) == expected


def test_partition_of_is_the_same_in_every_process() -> None:
    keys = ["a", "é", "", "word", b"x", 3, 3.0, True, None, ("a", 1), frozenset({"x", "y"})]
    here = [partition_of(k, 7) for k in keys]
    assert partition_of(1, 7) == partition_of(1.0, 7) == partition_of(True, 7)
    code = ("from mesh.data import partition_of; print([partition_of(k, 7) for k in "
            f"{keys!r}])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}, cwd=REPO, check=True)
        assert out.stdout.strip() == repr(here)


def slow_reduce(client: Client, path: Path, kind: str) -> object:
    """A word count or a sort of the words whose reduce side takes a while."""
    def pause(it):  # type: ignore[no-untyped-def]
        time.sleep(0.4)
        return it

    words = client.read_text(str(path), blocksize=8_000).flat_map(str.split)
    if kind == "reduce_by_key":
        return dict(words.map(lambda w: (w, 1)).reduce_by_key(operator.add, 6)
                    .map_partitions(pause).collect())
    return words.sort_by(npartitions=6).map_partitions(pause).collect()


@pytest.mark.parametrize("kind", ["reduce_by_key", "sort_by"])
def test_kill_9_of_a_node_mid_shuffle_still_gives_the_exact_result(
        cluster: Cluster, tmp_path: Path, kind: str) -> None:
    """The node dies once every map task is done and the reduce tasks run:
    the result equals the reference."""
    path = tmp_path / "corpus.txt"
    counts = write_corpus(path, 4_000, seed=3)
    expected: object = dict(counts) if kind == "reduce_by_key" else sorted(counts.elements())
    maps = -(-path.stat().st_size // 8_000) * (2 if kind == "sort_by" else 1)  # + samples
    nodes = start_mesh(cluster, 3)
    with Client([p.bind for p in nodes[:2]]) as client, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        before = sum(api(p.addr, "/v1/exec/stats")["completed"] for p in nodes)
        job = pool.submit(slow_reduce, client, path, kind)

        def maps_done() -> bool:
            now = sum(api(p.addr, "/v1/exec/stats")["completed"] for p in nodes)
            return now - before >= maps

        wait_until(maps_done, 90, "the map side of the shuffle to finish")
        assert not job.done()
        nodes[2].popen.kill()
        nodes[2].popen.wait(10)
        assert job.result(timeout=180) == expected


def test_a_shuffle_larger_than_the_nodes_memory_budget_completes_by_spilling(
        cluster: Cluster) -> None:
    """3 nodes with 8 MiB of memory each shuffle about 50 MB of blocks."""
    procs = cluster.start_many(3, config=None, extra=[
        "--workers", "1", "--log-level", "warning", "--memory-limit", "8MiB"])
    cluster.wait_converged(procs, 15)
    with Client([p.bind for p in procs]) as client:
        ds = client.from_sequence(range(48), npartitions=48).flat_map(
            lambda i: [(j % 5000, f"{j:0200d}") for j in range(i * 5000, i * 5000 + 5000)])
        got = ds.group_by_key(8).map(lambda kv: (kv[0], len(kv[1]))).collect()
        assert sorted(got) == [(k, 48) for k in range(5000)]
    # Past the budget values leave memory for their spill files: written there
    # (store_spilled), or, made by a worker straight into one, dropped from
    # memory (store_unmapped_bytes).
    metrics = [api(p.addr, "/v1/metrics") for p in procs]
    left = [m.get("store_spilled", 0) + m.get("store_unmapped_bytes", 0) for m in metrics]
    assert sum(left) > 0, left
