"""Dask collections and graphs on a real 3-node mesh (``mesh join``
processes on 127.0.0.1, all ended by the module fixture), checked against
Dask's synchronous scheduler.

Chunk sizes stay under the mesh's per-value limit (half the 8 MiB frame):
2000x2000 arrays in 500x500 chunks (2 MB each).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
np = pytest.importorskip("numpy")

from dask._task_spec import Alias, DataNode, List, Task, TaskRef  # noqa: E402
from dask.core import flatten  # noqa: E402

from mesh.client import AsyncClient, Client  # noqa: E402
from mesh.integrations.dask import (  # noqa: E402
    GraphCycleError,
    MissingDependencyError,
    submit_graph,
)
from tests import test_client_real  # noqa: E402
from tests.procs import Cluster, MeshProc, api, wait_until  # noqa: E402


def inc(x: int) -> int:
    return x + 1


def add(a: int, b: int) -> int:
    return a + b


def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


def touch(path: str) -> str:
    Path(path).write_text("ran")
    return path


mesh3 = test_client_real.mesh3  # one 3-node mesh for this module, ended at its end
client = test_client_real.client


def seed_array() -> da.Array:
    return da.random.random((2000, 2000), chunks=(500, 500))


def test_the_seeds_sum_matches_the_synchronous_scheduler(client: Client) -> None:
    x = seed_array()
    assert x.sum().compute(scheduler=client.get) == x.sum().compute(scheduler="sync")


def test_transpose_mean_matches_the_synchronous_scheduler(client: Client) -> None:
    x = seed_array()
    y = (x + x.T).mean(axis=0)
    with dask.config.set(scheduler=client.get):
        got = y.compute()
    np.testing.assert_allclose(got, y.compute(scheduler="sync"))
    assert got.shape == (2000,)


def test_bag_word_count_matches_the_synchronous_scheduler(client: Client) -> None:
    db = pytest.importorskip("dask.bag")
    lines = ["the quick brown fox", "jumps over the lazy dog", "the end"] * 20
    counts = db.from_sequence(lines, npartitions=6).str.split().flatten().frequencies()
    got = dict(counts.compute(scheduler=client.get))
    assert got == dict(counts.compute(scheduler="sync"))
    assert got["the"] == 60


def test_dataframe_groupby_matches_the_synchronous_scheduler(client: Client) -> None:
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    pdf = pd.DataFrame({"k": [i % 7 for i in range(1000)], "v": range(1000)})
    ddf = dd.from_pandas(pdf, npartitions=5)
    q = ddf.groupby("k").v.sum()
    pd.testing.assert_series_equal(q.compute(scheduler=client.get).sort_index(),
                                   q.compute(scheduler="sync").sort_index())


def test_legacy_tuple_graph_with_alias_and_nested_keys(client: Client) -> None:
    dsk = {"a": 1, "b": (inc, "a"), "c": (add, "a", "b"), "d": "c", "e": (sum, ["a", "b", "c"])}
    assert client.get(dsk, "c") == 3
    assert client.get(dsk, ["c", ["d", "a"], "e"]) == [3, [3, 1], 6]
    assert client.get(dsk, [("a")]) == [1]  # a DataNode: resolved without a remote task


def test_task_spec_graph_with_containers(client: Client) -> None:
    dsk = {
        "a": DataNode("a", 10),
        "b": Task("b", inc, TaskRef("a")),
        "c": Alias("c", "b"),
        "d": Task("d", sum, List(TaskRef("a"), TaskRef("c"), 5)),
        ("e", 0): Task(("e", 0), add, TaskRef("d"), b=TaskRef("b")),
    }
    assert client.get(dsk, [("e", 0), "c", "d"]) == [37, 11, 26]


def test_expression_graph_of_the_installed_dask(client: Client) -> None:
    from dask.base import collections_to_expr

    x = da.ones((100, 100), chunks=(25, 25))
    expr = collections_to_expr(x.sum(axis=0)).optimize()
    blocks = client.get(expr, expr.__dask_keys__())
    assert [b.tolist() for b in blocks] == [[100.0] * 25] * 4


def test_equal_graphs_share_keys_and_reused_names_do_not(client: Client) -> None:
    from dask.base import collections_to_expr

    def mesh_keys() -> list[str]:
        expr = collections_to_expr(da.ones((100, 100), chunks=(25, 25)).sum()).optimize()
        keys = list(flatten(expr.__dask_keys__()))
        return [submit_graph(client, expr, keys)[k].key for k in keys]

    assert mesh_keys() == mesh_keys()  # two equal graphs built apart: one result
    assert client.get({"a": 1, "b": (inc, "a")}, "b") == 2
    assert client.get({"a": 5, "b": (inc, "a")}, "b") == 6


def test_intermediates_are_kept_once_and_asked_keys_with_the_mesh_replicas(
        client: Client, mesh3: list[MeshProc]) -> None:
    dsk = {"i-a": (inc, 1), "i-b": (inc, "i-a"), "i-c": (add, "i-a", "i-b")}
    res = submit_graph(client, dsk, ["i-c"])
    assert res["i-c"].result(20) == 5

    def holders(key: str) -> int:
        return sum(api(p.addr, "/v1/exec/stats", {"key": key})["key"]["result"] is not None
                   for p in mesh3)

    assert [res[k]._state.spec[5] for k in ("i-a", "i-b", "i-c")] == [1, 1, 0]
    assert (holders(res["i-a"].key), holders(res["i-b"].key), holders(res["i-c"].key)) \
        == (1, 1, 2)


def test_compute_returns_a_future_and_persist_keeps_values(client: Client) -> None:
    x = seed_array()
    fut = client.compute(x.sum())
    assert fut.result(30) == pytest.approx(x.sum().compute(scheduler="sync"))
    kept = client.persist(x)
    assert kept.sum().compute(scheduler=client.get) == pytest.approx(fut.result())
    assert kept.sum().compute(scheduler="sync") == pytest.approx(fut.result())
    (again,) = dask.persist(x + 1, scheduler=client.get)  # dask.persist uses Client.persist
    assert again.sum().compute(scheduler=client.get) == pytest.approx(fut.result() + 4e6)


def test_a_raising_task_raises_with_the_remote_traceback(client: Client) -> None:
    dsk = {"a": 3, "b": (boom, "a"), "c": (inc, "b")}
    with pytest.raises(ValueError, match="boom 3") as info:
        client.get(dsk, "c")
    assert "in boom" in str(info.value.__cause__)


def test_a_cycle_fails_before_anything_runs(client: Client, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    dsk = {"t": (touch, str(marker)), "a": (add, "t", "b"), "b": (inc, "a")}
    with pytest.raises(GraphCycleError, match="cycle: 'a' -> 'b' -> 'a'"):
        client.get(dsk, ["t", "a"])
    assert not marker.exists()


def test_a_missing_dependency_fails_before_anything_runs(client: Client,
                                                         tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    dsk = {"t": Task("t", touch, str(marker)), "b": Task("b", inc, TaskRef("nope"))}
    with pytest.raises(MissingDependencyError, match="'b' depends on 'nope'"):
        client.get(dsk, ["t", "b"])
    with pytest.raises(MissingDependencyError, match="'zzz' is not in the graph"):
        client.get(dsk, "zzz")
    assert not marker.exists()


def test_async_client_get_and_compute(mesh3: list[MeshProc]) -> None:
    x = seed_array()

    async def main() -> tuple:
        async with AsyncClient([p.bind for p in mesh3]) as ac:
            total = await ac.get({"a": 1, "b": (inc, "a")}, ["b"])
            return total, await ac.compute(x.sum())

    total, s = asyncio.run(main())
    assert total == [2]
    assert s == pytest.approx(x.sum().compute(scheduler="sync"))


def slow_block(block: np.ndarray) -> np.ndarray:
    time.sleep(0.05)
    return block


def test_kill_9_of_a_node_mid_sum_still_gives_the_right_number(cluster: Cluster) -> None:
    procs = test_client_real.start_mesh(cluster)
    x = da.random.random((2000, 2000), chunks=(250, 250)).map_blocks(slow_block)
    expected = x.sum().compute(scheduler="sync")
    with Client([procs[0].bind]) as c:
        fut = c.compute(x.sum())
        wait_until(lambda: sum(api(p.addr, "/v1/exec/stats")["completed"] for p in procs) >= 16,
                   30, "16 finished tasks")
        assert not fut.done()
        procs[1].popen.kill()
        procs[1].popen.wait(5)
        assert fut.result(60) == pytest.approx(expected)


def test_without_dask_get_names_the_extra(client: Client,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dask._task_spec", None)
    with pytest.raises(ImportError, match=r"pip install 'mesh\[dask\]'"):
        client.get({"a": 1}, "a")
