"""The data plane on real ``mesh join`` processes: large values made by
tasks, kept in the nodes' stores, streamed between nodes and to the client."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mesh import Client
from tests.procs import FAST, Cluster, MeshProc, api, wait_until

MIB = 1 << 20


def _nodes(cluster: Cluster, tmp: Path, n: int, *, memory: str = "1GiB",
           config: dict | None = None) -> list[MeshProc]:
    procs = []
    ports = __import__("bench._ports", fromlist=["free_ports"]).free_ports(n)
    for i in range(n):
        seeds = [("127.0.0.1", ports[0])] if i else []
        extra = ["--workers", "1", "--memory-limit", memory,
                 "--spill-dir", str(tmp / f"spill{i + 1}")]
        procs.append(cluster.start(f"n{i + 1}", ports[i], seeds, {**FAST, **(config or {})},
                                   extra=extra))
    cluster.wait_converged(procs, 30)
    return procs


def _stats(p: MeshProc, **request: object) -> dict:
    return api(p.addr, "/v1/exec/stats", dict(request))


def _peak_rss_mb(p: MeshProc) -> float:
    with open(f"/proc/{p.popen.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _filled(n: int, v: float) -> np.ndarray:
    return np.full(n, v)


def test_a_256_mib_array_round_trips_with_node_memory_bounded(cluster: Cluster,
                                                               tmp_path: Path) -> None:
    a, b = _nodes(cluster, tmp_path, 2)
    n = 256 * MIB // 8
    with Client([a.bind]) as client:
        fut = client.submit(_filled, n, 7.0)
        got = fut.result(timeout=300)
        assert got.shape == (n,) and got[0] == 7.0 and got[-1] == 7.0 and got.sum() == 7.0 * n
        held = [_stats(p) for p in (a, b)]
        assert sum(s["store_values"] for s in held) == 2  # R=2 replicas, each in a store
        # The node that received its replica by transfer stays within the issue's
        # 2.5x of the value (a FileSink, then a map of the file). The node whose
        # worker made it still reads the result through the worker's pipe (up to
        # three transient copies in ProcessExecutor, until workers hand files over).
        peaks = sorted(_peak_rss_mb(p) for p in (a, b))
        assert peaks[0] < 2.5 * 256, peaks
        assert peaks[1] < 6 * 256, peaks
        assert client.submit(np.sum, fut).result(timeout=300) == 7.0 * n  # runs on any node


def _chunk(i: int) -> np.ndarray:
    return np.full(500_000, float(i))  # 4 MB


def test_the_chunk_graph_of_4_mb_arrays_sums_right(cluster: Cluster, tmp_path: Path) -> None:
    a, b = _nodes(cluster, tmp_path, 2)
    with Client([a.bind, b.bind]) as client:
        chunks = client.map(_chunk, range(40))
        sums = [client.submit(np.sum, c) for c in chunks]
        total = client.submit(sum, sums)
        assert total.result(timeout=300) == sum(i * 500_000.0 for i in range(40))
    moved = sum(api(p.addr, "/v1/metrics").get("transfer_values_received", 0) for p in (a, b))
    assert moved > 0  # some inputs crossed between the nodes as transfers


def test_kill_9_of_the_sender_mid_transfer_still_gives_the_right_value(
        cluster: Cluster, tmp_path: Path) -> None:
    slow = {"transfer_chunk": 64 * 1024, "transfer_window": 1}  # a transfer of seconds
    a, b, c = _nodes(cluster, tmp_path, 3, config=slow)
    key = next(k for k in (f"big-{i}" for i in range(200))
               if "n3" not in _stats(c, key=k)["key"]["pref"])
    n = 96 * MIB // 8
    with Client([a.bind]) as owner:
        fut = owner.submit(_filled, n, 3.0, key=key)
        fut.result(timeout=300)  # held on n1 and n2, not on n3
        with Client([c.bind]) as reader, ThreadPoolExecutor(1) as pool:
            later = reader.submit(_filled, n, 3.0, key=key)
            # result() asks n3 for the value: n3 fetches it from a holder
            got_later = pool.submit(later.result, timeout=300)

            def sending() -> str | None:
                return _stats(c)["fetching"].get(key)
            src = wait_until(sending, 120, "n3 to fetch the value", interval=0.01)
            victim = {"n1": a, "n2": b}[src]
            os.kill(victim.popen.pid, signal.SIGKILL)
            got = got_later.result(timeout=300)
    assert got.shape == (n,) and got[0] == 3.0 and got.sum() == 3.0 * n
    counters = api(c.addr, "/v1/metrics")
    assert counters.get("transfer_resumed", 0) >= 1, counters  # taken up from the other holder


def test_more_data_than_the_memory_limit_spills_and_completes(cluster: Cluster,
                                                              tmp_path: Path) -> None:
    a, b = _nodes(cluster, tmp_path, 2, memory="24MiB")
    with Client([a.bind, b.bind]) as client:
        futs = client.map(_chunk, range(16))  # 64 MB, twice over (R=2), held
        sums = client.gather([client.submit(np.sum, f) for f in futs], timeout=300)
        assert sums == [i * 500_000.0 for i in range(16)]

        def spilled() -> list[dict] | None:  # spill writes finish off the loop
            stats = [_stats(p) for p in (a, b)]
            return stats if all(s["store_memory_bytes"] <= 24 * MIB for s in stats) else None
        stats = wait_until(spilled, 60, "the stores to spill down to their limit")
        assert sum(s["store_disk_bytes"] for s in stats) >= 2 * 16 * 4_000_000 - 48 * MIB
        assert sum(s["store_values"] for s in stats) >= 2 * 16
        back = client.gather(futs, timeout=300)  # read back from the spill files
        assert all(x[0] == i for i, x in enumerate(back))
