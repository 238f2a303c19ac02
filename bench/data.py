"""The data plane: large values made by tasks, moved between nodes and to
the client, against Dask.

``python -m bench.data`` prints one JSON line::

    {"chunks": {"mesh_s", "mesh_r1_s", "dask_s", "n", "chunk_mb", "correct"},
     "transfer": {"to_client_mb_per_s", "node_to_node_mb_per_s", "upload_mb_per_s", "mb"},
     "rss": {"max_node_mb"}}

* ``chunks``: ``--chunks`` (200) tasks each returning a ``--chunk-mb`` (4) MB
  float64 array, a ``numpy.sum`` task per chunk, then one ``sum`` of the
  sums. ``mesh_s`` on a local mesh of 2 nodes with 1 worker each (default
  replicas); ``mesh_r1_s`` the same with ``replicas=1`` per call (``null``
  while ``Client.submit`` has no ``replicas``); ``dask_s`` on Dask's
  ``LocalCluster(n_workers=2, threads_per_worker=1)``.
* ``transfer``: on a second local mesh of 2 nodes started with
  ``--replicas 1`` (so the value lives on one node), a task makes one
  ``--transfer-mb`` (1024) MiB array. ``to_client_mb_per_s``: ``result()``
  on a client attached to the node that holds it, timed from the moment
  the node holds it until the array is in the client. ``node_to_node_mb_per_s``:
  a task owned by the other node and restricted to it (``workers=``, so
  locality does not send it to the value) takes the value as its input; timed
  from its submission until that node holds the whole value (its store's
  figure). ``upload_mb_per_s``: ``Client.scatter`` of a ``--transfer-mb``
  array to the node that keeps it (client to node; :func:`upload`).
* ``rss``: ``max_node_mb``, the largest peak resident memory (``VmHWM``)
  of a node of the transfer mesh over the whole round trip.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench._ports import free_ports

REPO = Path(__file__).resolve().parent.parent


def make_chunk(i: int, n: int) -> np.ndarray:
    return np.full(n, float(i))


def make_big(n: int) -> np.ndarray:
    return np.ones(n)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def local_mesh(nodes: int, extra: list[str]) -> Iterator[tuple[list[str], list[int]]]:
    """``nodes`` ``mesh join`` processes with 1 worker each, spilling under a
    temporary directory; yields (addresses, pids); kills and removes all."""
    from mesh.client import Client, MeshUnavailable

    ports = free_ports(nodes)
    env = {k: v for k, v in os.environ.items() if k != "MESH_SECRET"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    tmp = Path(tempfile.mkdtemp(prefix="mesh-bench-data-"))
    procs: list[subprocess.Popen] = []
    try:
        for i, port in enumerate(ports):
            cmd = [sys.executable, "-m", "mesh.cli", "join", "--bind", f"127.0.0.1:{port}",
                   "--name", f"d{i + 1}", "--seed", f"127.0.0.1:{ports[i - 1]}",
                   "--workers", "1", "--log-level", "warning",
                   "--spill-dir", str(tmp / f"spill{i + 1}"), *extra]
            with open(tmp / f"d{i + 1}.log", "wb") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env, cwd=REPO))
        addrs = [f"127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 60
        while True:  # poll until every node has joined and runs tasks
            try:
                with Client(addrs, connect_timeout=2) as c:
                    if len(c.addresses) >= nodes and c.submit(abs, -1, pure=False).result(5):
                        break
            except (OSError, TimeoutError, MeshUnavailable) as exc:  # not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bench mesh did not come up: {exc!r}") from exc
            time.sleep(0.2)
        yield addrs, [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    got = run()
    return round(time.perf_counter() - start, 3), got


def chunk_graph(submit: Callable[..., Any], n: int, size: int, **kw: Any) -> float:
    arrays = [submit(make_chunk, i, size, **kw) for i in range(n)]
    sums = [submit(np.sum, a, **kw) for a in arrays]
    return submit(sum, sums, **kw).result()


def _stats(addr: str, **request: Any) -> dict:
    """A node's ``/v1/exec/stats`` (no secret: the bench mesh runs on loopback)."""
    import urllib.request

    from mesh.config import DEFAULT
    from mesh.wire import Codec

    codec = Codec(None, DEFAULT.max_http_body)
    req = urllib.request.Request(f"http://{addr}/v1/exec/stats", data=codec.seal(request),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=120) as reply:
        return codec.open(reply.read())


def _wait(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = probe()
        except OSError:  # a node busy reading a large result from its worker's pipe
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


def transfer(mb: int) -> tuple[dict[str, Any], float]:
    from mesh.client import Client

    n = mb * (1 << 20) // 8
    with local_mesh(2, ["--replicas", "1"]) as (addrs, pids):
        key = "bench-data-big"
        holder = _stats(addrs[0], key=key)["key"]["pref"][0]
        home = next(a for a in addrs if _stats(a)["node"] == holder)
        other = next(a for a in addrs if a != home)
        with Client([home]) as client:
            fut = client.submit(make_big, n, key=key)
            _wait(lambda: (_stats(home, key=key)["key"]["result"] or {}).get("confirmed"),
                  600, "the value to be made")
            start = time.perf_counter()
            got = fut.result(timeout=600)
            to_client = mb * 1.048576 / (time.perf_counter() - start)
            assert got.shape == (n,) and float(got[-1]) == 1.0
            del got
            other_name = _stats(other)["node"]
            tkey = next(k for k in (f"bench-data-len-{i}" for i in range(1000))
                        if _stats(other, key=k)["key"]["pref"][0] == other_name)
            before = _stats(other)["store_values"]
            start = time.perf_counter()
            sized = client.submit(np.size, fut, key=tkey, workers=other_name)
            _wait(lambda: _stats(other)["store_values"] > before, 600, "the transfer")
            node_to_node = mb * 1.048576 / (time.perf_counter() - start)
            assert sized.result(timeout=600) == n
        rss = max(peak_rss_mb(pid) for pid in pids)
    return ({"to_client_mb_per_s": round(to_client, 1),
             "node_to_node_mb_per_s": round(node_to_node, 1), "mb": mb}, round(rss, 1))


def upload(mb: int) -> float:
    """``upload_mb_per_s``: ``Client.scatter`` of one ``mb`` MiB array (its
    serialization, its SHA-256 and the chunked transfer) to the node that
    keeps it, on a local mesh of 2 nodes with ``--replicas 1``, timed until
    the node says it holds it."""
    from mesh._client_upload import prepare
    from mesh.client import Client

    big = make_big(mb * (1 << 20) // 8)
    key = prepare(big, key=None, hash=True, client_id="", replicas=1).key
    with local_mesh(2, ["--replicas", "1"]) as (addrs, _pids):
        owner = _stats(addrs[0], key=key)["key"]["pref"][0]
        home = next(a for a in addrs if _stats(a)["node"] == owner)
        with Client([home]) as client:
            start = time.perf_counter()
            fut = client.scatter(big, replicas=1, timeout=600)
            seconds = time.perf_counter() - start
            assert fut.key == key and client.submit(np.size, fut).result(600) == big.size
    return round(mb * 1.048576 / seconds, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-mb", type=float, default=4.0)
    parser.add_argument("--transfer-mb", type=int, default=1024, help="MiB moved (1 GiB)")
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args(argv)
    import logging

    from mesh.client import Client

    logging.getLogger("distributed").setLevel(logging.ERROR)
    size = int(args.chunk_mb * 1_000_000 // 8)
    expected = float(sum(i * size for i in range(args.chunks)))
    chunks: dict[str, Any] = {"n": args.chunks, "chunk_mb": args.chunk_mb}
    correct = True
    with local_mesh(2, []) as (addrs, _pids), Client(addrs) as client:
        chunk_graph(client.submit, 4, size, pure=False)  # warm: workers import numpy
        chunks["mesh_s"], got = timed(lambda: chunk_graph(client.submit, args.chunks, size))
        correct &= got == expected
        if "replicas" in inspect.signature(Client.submit).parameters:
            chunks["mesh_r1_s"], got = timed(lambda: chunk_graph(
                client.submit, args.chunks, size, pure=False, replicas=1))
            correct &= got == expected
        else:
            chunks["mesh_r1_s"] = None
    if args.skip_dask:
        chunks["dask_s"] = None
    else:
        from distributed import Client as DaskClient
        from distributed import LocalCluster

        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, DaskClient(cluster) as dc:
            chunk_graph(dc.submit, 4, size, pure=False)
            chunks["dask_s"], got = timed(lambda: chunk_graph(dc.submit, args.chunks, size))
            correct &= got == expected
    chunks["correct"] = bool(correct)
    moved, rss = transfer(args.transfer_mb)
    moved["upload_mb_per_s"] = upload(args.transfer_mb)
    print(json.dumps({"chunks": chunks, "transfer": moved, "rss": {"max_node_mb": rss}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
