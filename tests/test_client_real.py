"""The client against a real mesh: three ``mesh join`` processes on 127.0.0.1.

One mesh serves the tests that do not break it (module fixture, every process
killed at the end); the tests that kill nodes start their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh.client import AsyncClient, Client, KilledWorker, as_completed
from mesh.exec import MeshUnavailable
from mesh.placement import Member, Placement
from tests.procs import (
    FAST,
    MESH,
    REPO,
    Cluster,
    MeshProc,
    api,
    free_ports,
    members,
    wait_until,
)

NODE_FLAGS = ["--workers", "1", "--log-level", "warning"]


def inc(x: int) -> int:
    return x + 1


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def slow_inc(x: int, seconds: float = 0.002) -> int:
    time.sleep(seconds)
    return x + 1


def token() -> str:
    """A value that differs on every run: recomputing would be visible."""
    return uuid.uuid4().hex


def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


def crash() -> None:
    os._exit(1)


def flaky(path: str, fails: int) -> int:
    """Raises the first ``fails`` times it runs (counted in a file)."""
    p = Path(path)
    n = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(n))
    if n <= fails:
        raise RuntimeError(f"attempt {n} fails")
    return n


def start_mesh(cluster: Cluster, n: int = 3, config: dict | None = None) -> list[MeshProc]:
    """``n`` nodes with one worker each (fast failure detection unless
    ``config`` says otherwise), converged and running the exec service."""
    procs = cluster.start_many(n, config=FAST if config is None else config, extra=NODE_FLAGS)
    cluster.wait_converged(procs, 15)

    def exec_ready() -> bool:
        for p in procs:
            api(p.addr, "/v1/exec/stats")
            members = p.members()
            if any(not m["meta"].get("workers") for m in members.values()):
                return False
        return True

    wait_until(exec_ready, 15, "every node to run its exec service")
    return procs


@pytest.fixture(scope="module")
def mesh3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MeshProc]]:
    cluster = Cluster(tmp_path_factory.mktemp("mesh3"))
    try:
        yield start_mesh(cluster)
    finally:
        cluster.close()


@pytest.fixture
def client(mesh3: list[MeshProc]) -> Iterator[Client]:
    with Client([p.bind for p in mesh3]) as c:
        yield c


def test_submit_returns_the_functions_result(client: Client) -> None:
    assert client.submit(pow, 2, 10).result(10) == 1024
    assert client.submit(add, 2, b=40).result(10) == 42


def test_map_and_gather_return_every_result_in_order(client: Client) -> None:
    futs = client.map(inc, range(3000))
    assert client.gather(futs, timeout=30) == [i + 1 for i in range(3000)]


def test_map_spreads_tasks_over_every_node(mesh3: list[MeshProc], client: Client) -> None:
    before = [api(p.addr, "/v1/exec/stats")["completed"] for p in mesh3]
    client.gather(client.map(square, range(600), pure=False), timeout=30)
    after = [api(p.addr, "/v1/exec/stats")["completed"] for p in mesh3]
    ran = [a - b for a, b in zip(after, before, strict=True)]
    assert sum(ran) >= 600
    assert all(r > 50 for r in ran), ran


def test_futures_as_arguments_form_a_task_graph(client: Client) -> None:
    futs = client.map(square, range(100))
    total = client.submit(sum, futs)
    nested = client.submit(add, total, client.submit(inc, total))
    assert total.result(20) == sum(x * x for x in range(100))
    assert nested.result(20) == 2 * total.result() + 1


def test_as_completed_yields_each_future_once(client: Client) -> None:
    futs = client.map(slow_inc, range(50), pure=False)
    seen = [f.result() for f in as_completed(futs, timeout=30)]
    assert sorted(seen) == list(range(1, 51))


def test_executor_is_a_concurrent_futures_executor(client: Client) -> None:
    with client.executor() as ex:
        assert isinstance(ex, concurrent.futures.Executor)
        assert list(ex.map(square, range(20))) == [x * x for x in range(20)]
        fut = ex.submit(add, 1, 2)
        assert isinstance(fut, concurrent.futures.Future)
        assert fut.result(10) == 3
        with pytest.raises(ValueError, match="boom 3"):
            ex.submit(boom, 3).result(10)


def test_executor_futures_can_be_cancelled_until_they_finish(client: Client) -> None:
    with client.executor() as ex:
        fut = ex.submit(slow_inc, 1, 5.0)  # still running when cancelled
        assert not fut.running() and fut.cancel()
        assert fut.cancelled()
        with pytest.raises(concurrent.futures.CancelledError):
            fut.result(1)
        done = ex.submit(add, 1, 2)
        assert done.result(10) == 3
        assert not done.cancel()  # a finished call stays finished


def test_executor_shutdown_cancel_futures_cancels_what_has_not_finished(
    client: Client,
) -> None:
    ex = client.executor()
    finished = ex.submit(add, 2, 3)
    assert finished.result(10) == 5
    slow = [ex.submit(slow_inc, i, 5.0) for i in range(8)]
    mapped = ex.map(slow_inc, range(8), [5.0] * 8)
    start = time.monotonic()
    ex.shutdown(wait=True, cancel_futures=True)
    assert time.monotonic() - start < 4.0  # did not wait for the 5 s tasks
    assert all(f.cancelled() for f in slow)
    with pytest.raises(concurrent.futures.CancelledError):
        next(mapped)
    assert finished.result() == 5
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(add, 1, 1)


def test_pure_tasks_with_equal_inputs_share_one_key(client: Client) -> None:
    a = client.submit(square, 12)
    b = client.submit(square, 12)
    c = client.submit(square, 12, pure=False)
    assert a.key == b.key != c.key
    assert a.result(10) == b.result(10) == c.result(10) == 144


def test_raising_task_reraises_with_the_remote_traceback(client: Client) -> None:
    fut = client.submit(boom, 7)
    with pytest.raises(ValueError, match="boom 7") as info:
        fut.result(10)
    assert "in boom" in str(info.value.__cause__)
    assert fut.status == "error"
    assert isinstance(fut.exception(), ValueError)


def test_a_failed_dependency_fails_its_dependents(client: Client) -> None:
    bad = client.submit(boom, 1)
    dependent = client.submit(inc, bad)
    with pytest.raises(ValueError, match="boom 1"):
        dependent.result(10)


def test_task_that_kills_its_worker_three_times_raises_killed_worker(client: Client) -> None:
    fut = client.submit(crash)
    with pytest.raises(KilledWorker) as info:
        fut.result(30)
    msg = str(info.value)
    assert fut.key in msg and "3 times" in msg and "os._exit" in msg
    # The workers were replaced: the node still runs tasks.
    assert client.gather(client.map(inc, range(20), pure=False), timeout=20) == list(
        range(1, 21))


def test_retries_run_a_raising_task_again(client: Client, tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    assert client.submit(flaky, counter, 2, retries=2, pure=False).result(20) == 3
    counter2 = str(tmp_path / "count2")
    with pytest.raises(RuntimeError, match="attempt 2 fails"):
        client.submit(flaky, counter2, 2, retries=1, pure=False).result(20)


def test_a_typo_in_retries_is_refused_at_the_call_and_the_mesh_keeps_serving(
        client: Client) -> None:
    with pytest.raises(TypeError, match="retries"):
        client.submit(boom, 1, retries="2")
    with pytest.raises(ValueError, match="retries"):
        client.map(boom, [1, 2], retries=-1)
    assert client.submit(inc, 41, pure=False).result(timeout=30) == 42


def test_result_timeout_raises_and_the_task_keeps_running(client: Client) -> None:
    fut = client.submit(slow_inc, 1, 0.5, pure=False)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.05)
    assert time.monotonic() - start < 0.4
    with pytest.raises(TimeoutError):
        client.gather([fut], timeout=0.05)
    assert fut.result(10) == 2


def test_cancel_resolves_the_future_as_cancelled(client: Client) -> None:
    blockers = client.map(slow_inc, range(6), [0.3] * 6, pure=False)
    fut = client.submit(slow_inc, 99, 0.3)
    assert fut.cancel()
    assert fut.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result(1)
    # The same pure task submitted again is a fresh future that completes.
    again = client.submit(slow_inc, 99, 0.3)
    assert again.result(20) == 100
    assert client.gather(blockers, timeout=20) == list(range(1, 7))
    assert not again.cancel()


def test_wrong_secret_is_refused(mesh3: list[MeshProc]) -> None:
    # The test mesh has no secret; a client with one cannot open its frames.
    with pytest.raises(MeshUnavailable):
        Client([mesh3[0].bind], secret=b"not the secret", connect_timeout=1.0,
               reconnect_timeout=1.0)


async def test_async_client_offers_the_same_operations(mesh3: list[MeshProc]) -> None:
    async with AsyncClient([p.bind for p in mesh3]) as client:
        assert await client.submit(pow, 3, 4) == 81
        futs = client.map(inc, range(500))
        assert await client.gather(futs) == list(range(1, 501))
        assert await client.submit(sum, futs) == sum(range(1, 501))
        seen = [await f async for f in as_completed(client.map(square, range(10)))]
        assert sorted(seen) == [x * x for x in range(10)]
        with pytest.raises(ValueError, match="boom 5"):
            await client.submit(boom, 5)
        with pytest.raises(asyncio.TimeoutError):
            await client.gather(client.submit(slow_inc, 0, 1.0, pure=False), timeout=0.05)


# --------------------------------------------------------------- failures


def owner_of(key: str, procs: list[MeshProc]) -> tuple[str, ...]:
    members = procs[0].members()
    placement = Placement([Member(n, m["meta"].get("workers", 1))
                           for n, m in sorted(members.items()) if m["status"] == "alive"])
    return placement.preference_list(key, 2)


def test_kill_9_of_a_node_mid_map_loses_no_task(cluster: Cluster) -> None:
    procs = start_mesh(cluster)
    with Client([procs[0].bind]) as client:
        assert client.node == procs[0].name
        futs = client.map(slow_inc, range(2000), pure=False)
        wait_until(lambda: sum(f.done() for f in futs) >= 300, 30, "300 results")
        victim = procs[1]
        victim.popen.kill()
        victim.popen.wait(5)
        assert client.gather(futs, timeout=60) == [i + 1 for i in range(2000)]
        assert all(f.status == "finished" for f in futs)


def test_a_result_survives_its_owners_death(cluster: Cluster) -> None:
    procs = start_mesh(cluster)
    entry = procs[0]
    with Client([entry.bind]) as client:
        # Pick a task owned by a node other than the entry node.
        for _ in range(100):
            fut = client.submit(token, pure=False)
            if owner_of(fut.key, procs)[0] != entry.name:
                break
            fut.release()
        value = fut.result(10)
        owner = next(p for p in procs if p.name == owner_of(fut.key, procs)[0])
        owner.popen.kill()
        owner.popen.wait(5)
        wait_until(lambda: entry.statuses().get(owner.name) == "dead", 20, "the owner dead")
        # A dependent task reads the stored result from its replica: recomputing
        # the token would give another value.
        assert client.submit(lambda v: v, fut, pure=False).result(20) == value


def test_client_reconnects_when_its_entry_node_dies(cluster: Cluster) -> None:
    procs = start_mesh(cluster)
    with Client([p.bind for p in procs]) as client:
        entry = next(p for p in procs if p.name == client.node)
        done_before = client.gather(client.map(inc, range(50), pure=False), timeout=20)
        futs = client.map(slow_inc, range(300), [0.01] * 300, pure=False)
        wait_until(lambda: sum(f.done() for f in futs) >= 20, 30, "20 results")
        entry.popen.kill()
        entry.popen.wait(5)
        assert client.gather(futs, timeout=60) == [i + 1 for i in range(300)]
        assert client.node != entry.name
        assert done_before == list(range(1, 51))
        assert client.submit(inc, 41).result(20) == 42


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_100k_tasks_keep_node_queues_bounded_and_the_client_waits(cluster: Cluster) -> None:
    # Default failure detection: under this load the test mode's 0.1 s probe
    # timeout would take busy nodes for dead.
    mesh = start_mesh(cluster, config={"join_retry_initial": 0.1, "join_retry_max": 0.3})
    with Client([p.bind for p in mesh]) as client:
        check_backpressure(mesh, client)


def check_backpressure(mesh3: list[MeshProc], client: Client) -> None:
    n = 100_000
    window = 4096  # ExecService's default credit per client
    futs = client.map(inc, range(n), pure=False)
    peak_tasks: dict[str, int] = {}
    peak_rss: dict[str, float] = {}
    waited = False

    def finished() -> bool:
        nonlocal waited
        waited |= bool(client._core.unsent) or bool(client._core.inbox)
        for p in mesh3:
            stats = api(p.addr, "/v1/exec/stats")
            peak_tasks[p.name] = max(peak_tasks.get(p.name, 0), stats["tasks"])
            peak_rss[p.name] = max(peak_rss.get(p.name, 0.0), rss_mb(p.popen.pid))
        return futs[-1].done() and all(f.done() for f in futs[::97])

    wait_until(finished, 80, "100,000 tasks", interval=0.2)
    assert client.gather(futs, timeout=30) == list(range(1, n + 1))
    assert waited, "the client never had to wait for credit"
    assert all(0 < t <= window for t in peak_tasks.values()), peak_tasks
    assert all(r < 500 for r in peak_rss.values()), peak_rss


def test_client_uses_the_cluster_secret(cluster: Cluster) -> None:
    secret = b"s3cret-for-the-test"
    procs = cluster.start_many(2, config=FAST, extra=NODE_FLAGS, secret=secret)
    wait_until(lambda: all(
        len([m for m in members(p.addr, secret).values() if m["meta"].get("workers")]) == 2
        for p in procs), 15, "a converged secret mesh")
    with Client([p.bind for p in procs], secret=secret) as client:
        assert client.submit(add, 40, 2).result(10) == 42
    with pytest.raises(MeshUnavailable):
        Client([procs[0].bind], secret=None, connect_timeout=1.0, reconnect_timeout=1.0)


def test_mesh_up_demo_runs_a_job_and_prints_per_node_counts(tmp_path: Path) -> None:
    base = free_ports(3, consecutive=True)[0]
    env = dict(os.environ)
    env.pop("MESH_SECRET", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    up = subprocess.Popen([*MESH, "up", "--nodes", "3", "--demo", "--base-port", str(base),
                           "--log-level", "warning"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        out, err = up.communicate(timeout=90)
    finally:
        if up.poll() is None:
            up.kill()
            out, err = up.communicate()
        # `mesh up` ends its nodes itself; make sure of it whatever happened.
        for line in out.splitlines():
            if " pid " in line:
                pid = int(line.rsplit(" ", 1)[1])
                with contextlib.suppress(OSError):  # already gone: fine
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if b"mesh.cli" in cmdline and str(base).encode()[:3] in cmdline:
                        os.kill(pid, signal.SIGKILL)
    assert up.returncode == 0, out + err
    lines = out.splitlines()
    counts = [int(line.split(":")[1].split()[0]) for line in lines
              if line.startswith("  node")]
    assert len(counts) == 3 and sum(counts) >= 2000 and min(counts) > 0
    assert any("result 2664667000 (expected 2664667000)" in line for line in lines)
    top = [line for line in lines if line.startswith("demo: word count of ")]
    assert len(top) == 1 and top[0].count(" 12000") == 4, out  # four words tie at the top


def test_idle_nodes_steal_queued_work_from_a_loaded_node(mesh3: list[MeshProc],
                                                         client: Client) -> None:
    placement = Placement([Member(p.name, 1) for p in mesh3])
    owner = mesh3[1].name
    keys = []
    for i in range(40):
        keys.append(next(f"steal-{i}-{j}" for j in range(1000)
                         if placement.owner(f"steal-{i}-{j}") == owner))
    before = {p.name: api(p.addr, "/v1/exec/stats")["completed"] for p in mesh3}
    start = time.monotonic()
    futs = [client.submit(slow_inc, i, 0.1, key=k) for i, k in enumerate(keys)]
    assert client.gather(futs, timeout=30) == list(range(1, 41))
    elapsed = time.monotonic() - start
    ran = {p.name: api(p.addr, "/v1/exec/stats")["completed"] - before[p.name] for p in mesh3}
    helpers = [n for n in ran if n != owner]
    assert all(ran[n] > 0 for n in helpers), ran
    assert elapsed < 40 * 0.1, f"{elapsed:.2f} s: no faster than the owner alone"


def test_released_futures_let_the_mesh_forget_their_results(mesh3: list[MeshProc],
                                                            client: Client) -> None:
    def stored() -> int:
        return sum(api(p.addr, "/v1/exec/stats")["results"] for p in mesh3)

    base = stored()
    futs = client.map(square, range(1000, 1500), pure=False)
    client.gather(futs, timeout=20)
    assert stored() >= base + 500 * 2  # every result on two nodes
    del futs
    gc.collect()
    wait_until(lambda: stored() <= base, 10, "the released results to be dropped")


def test_client_leaves_an_entry_node_that_hangs_without_closing(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    import mesh._client_core as engine

    monkeypatch.setattr(engine, "KEEPALIVE_INTERVAL", 0.2)
    monkeypatch.setattr(engine, "KEEPALIVE_TIMEOUT", 1.0)
    procs = start_mesh(cluster)
    with Client([p.bind for p in procs]) as client:
        entry = next(p for p in procs if p.name == client.node)
        futs = client.map(slow_inc, range(200), [0.01] * 200, pure=False)
        wait_until(lambda: sum(f.done() for f in futs) >= 20, 30, "20 results")
        entry.signal(signal.SIGSTOP)  # alive to TCP, silent to everyone
        try:
            assert client.gather(futs, timeout=60) == [i + 1 for i in range(200)]
            assert client.node != entry.name
        finally:
            entry.signal(signal.SIGCONT)
