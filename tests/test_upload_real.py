"""Values sent from the client to real ``mesh join`` processes: a large
``submit`` argument, ``Client.scatter`` and tasks on a scattered value, a
client that dies mid-upload, and sizes a node refuses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mesh import Client, TaskFailed
from mesh._client_future import PENDING
from mesh.protocol.messages import Scatter, encode
from mesh.store._channel import OFFER
from tests.procs import REPO, Cluster, wait_until
from tests.test_dataplane_real import _nodes, _stats

MIB = 1 << 20

_CLIENT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mesh import Client

    def hwm():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    n = int(sys.argv[2]) // 8
    big = np.full(n, 3.0)
    base = hwm()
    with Client([sys.argv[1]]) as c:
        if sys.argv[3] == "round-trip":
            s1 = c.submit(np.sum, big).result(timeout=600)
            fut = c.scatter(big, timeout=600)
            s2 = c.submit(np.sum, fut).result(timeout=600)
            m = c.submit(np.max, fut).result(timeout=600)
            print(json.dumps({"sums": [float(s1), float(s2)], "max": float(m),
                              "extra": hwm() - base, "n": n}), flush=True)
        else:
            print("uploading", flush=True)
            c.scatter(big, timeout=600)
            print("done", flush=True)
""")


def _client(addr: str, nbytes: int, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", _CLIENT, addr, str(nbytes), mode],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_a_256_mib_argument_and_a_scattered_value_round_trip_without_whole_copies(
        cluster: Cluster, tmp_path: Path) -> None:
    a, b = _nodes(cluster, tmp_path, 2)
    nbytes = 256 * MIB
    proc = _client(a.bind, nbytes, "round-trip")
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        proc.kill()
    got = json.loads(out.strip().splitlines()[-1])
    n = got["n"]
    assert got["sums"] == [3.0 * n, 3.0 * n] and got["max"] == 3.0
    # The client serializes with out-of-band buffers and sends slices of them:
    # beyond the array itself it holds sealed chunks, not another copy.
    assert got["extra"] < 0.5 * nbytes, got["extra"] / MIB
    held = [_stats(p) for p in (a, b)]
    assert all(s["uploads_in_flight"] == 0 for s in held)


def test_a_client_killed_mid_upload_leaves_nothing_on_the_node(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    (a,) = _nodes(cluster, tmp_path, 1)
    spill = tmp_path / "spill1"
    proc = _client(a.bind, 768 * MIB, "upload")
    try:
        wait_until(lambda: _stats(a)["upload_bytes_in_flight"] > 0
                   and any(p.name.endswith(".part") for p in spill.rglob("*")), 120,
                   "an upload in flight with a partial file")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()

    def freed() -> bool:
        s = _stats(a)
        return (s["uploads_in_flight"] == 0 and s["upload_bytes_in_flight"] == 0
                and s["store_values"] == 0
                and not any(p.name.endswith(".part") for p in spill.rglob("*")))
    wait_until(freed, 60, "the partial upload freed")


def test_sizes_a_node_cannot_hold_are_refused_with_a_clear_error(cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    (a,) = _nodes(cluster, tmp_path, 1)
    with Client([a.bind]) as c:
        core = c._core
        limit = core.scatter.uploads.limit
        assert limit is not None and limit > 0  # the node says what it can hold
        # A client that declares more than that (a bug, or hostile): refused by the node.
        key = "too-big"
        fut = core.scatter._register(__import__("mesh._client_upload", fromlist=["x"])
                                     .prepare(b"x", key=key, hash=True, client_id="t",
                                              replicas=0))
        core.scatter.new.clear()
        core._control.append([OFFER, encode(Scatter(key, b"", 0)),
                              [[key, 1, [limit + 1], b"0" * 32, 4 * MIB]]])
        core.loop.call_soon_threadsafe(core._wake)
        wait_until(lambda: fut.status != PENDING, 30, "the node's answer")
        with pytest.raises(TaskFailed, match=r"more than node 'n1' can hold"):
            fut.result()
        assert _stats(a)["uploads_refused"] == 1
        # This client checks the limit itself before it sends anything.
        core.scatter.uploads.limit = 1000
        with pytest.raises(ValueError, match=r"more than node 'n1' can hold \(1000 bytes"):
            c.scatter(np.ones(1000))
        core.scatter.uploads.limit = limit
        assert c.submit(np.sum, np.ones(1_000_000)).result(timeout=60) == 1_000_000.0


def _plus(a: np.ndarray, b: float) -> float:
    return float(a[0] + b)


def test_large_arguments_of_map_are_scattered_once_and_survive_their_entry_node(
        cluster: Cluster, tmp_path: Path) -> None:
    a, b = _nodes(cluster, tmp_path, 2)
    big = np.full(2 * MIB, 2.0)  # 16 MiB: far past the frame limit inline
    with Client([a.bind, b.bind]) as c:
        offered: list[str] = []
        uploads = c._core.scatter.uploads
        add = uploads.add
        uploads.add = lambda up: (offered.append(up.key), add(up))[1]  # type: ignore[method-assign]
        futs = c.map(_plus, [big] * 3, [1.0, 2.0, 3.0])
        assert c.gather(futs, timeout=120) == [3.0, 4.0, 5.0]
        assert len(offered) == 1 and offered[0].startswith("ndarray-")  # one for 3 calls
        # A scattered value lives on R (2) nodes like a task's result: it
        # outlives the node that received it.
        fut = c.scatter(big, timeout=120)
        entry = next(p for p in (a, b) if p.name == c.node)
        os.kill(entry.popen.pid, signal.SIGKILL)
        assert c.submit(np.sum, fut).result(timeout=120) == 2.0 * big.size
        got = fut.result(timeout=120)
        assert got.shape == big.shape and (got == big).all()


def test_async_scatter_is_awaitable_and_its_futures_work_as_arguments(cluster: Cluster,
                                                                     tmp_path: Path) -> None:
    import asyncio

    from mesh import AsyncClient

    (a,) = _nodes(cluster, tmp_path, 1)

    async def main() -> None:
        async with AsyncClient([a.bind]) as c:
            small, big = await c.scatter([3, np.arange(300_000.0)], hash=False)
            assert small.status == big.status == "finished"
            assert await c.submit(np.sum, big) == np.arange(300_000.0).sum()
            assert await small == 3
            got = await c.gather([big])
            assert (got[0] == np.arange(300_000.0)).all()
            named = await c.scatter({"weights": np.ones(4)})
            assert named["weights"].key == "weights"
            assert await c.submit(np.sum, named["weights"]) == 4.0
    asyncio.run(main())
