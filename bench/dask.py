"""Dask collections and joblib: the mesh against Dask and loky.

``python -m bench.dask`` prints one JSON line, all measured in one run:

* ``mesh_s`` / ``dask_distributed_s`` / ``dask_threads_s``: the seed's
  ``da.random.random((n, n), chunks=(c, c)).sum()``.
* ``transpose``: the same three for ``(x + x.T).mean(axis=0)``, which moves
  chunks between workers.
* ``joblib_mesh_s`` / ``joblib_loky_s``: ``Parallel(n_jobs=-1)`` over 2,000
  calls of a 1 ms function.

Same worker processes everywhere: a local mesh of two ``mesh join`` nodes with
one worker each, a Dask ``LocalCluster(n_workers=2, threads_per_worker=1)``,
Dask's threaded scheduler, loky's default pool. Each system computes a small
array once first (imports in its workers). A mesh figure that fails (values
over half the mesh's 8 MiB frame limit) is recorded as
``{"error": ..., "n": ..., "chunk": ...}``, never as a number.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench._ports import free_ports

REPO = Path(__file__).resolve().parent.parent


def one_ms(i: int) -> int:
    time.sleep(0.001)
    return i


@contextlib.contextmanager
def local_mesh(nodes: int = 2) -> Iterator[list[str]]:
    """``nodes`` ``mesh join`` processes with one worker each; yields their
    addresses once a client can run a task; kills them all at the end."""
    from mesh.client import Client, MeshUnavailable

    ports = free_ports(nodes)
    env = {k: v for k, v in os.environ.items() if k != "MESH_SECRET"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    logdir = Path(tempfile.mkdtemp(prefix="mesh-bench-dask-"))
    procs: list[subprocess.Popen] = []
    try:
        for i, port in enumerate(ports):
            cmd = [sys.executable, "-m", "mesh.cli", "join", "--bind", f"127.0.0.1:{port}",
                   "--name", f"d{i + 1}", "--seed", f"127.0.0.1:{ports[i - 1]}",
                   "--workers", "1", "--log-level", "warning"]
            with open(logdir / f"d{i + 1}.log", "wb") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env, cwd=REPO))
        addrs = [f"127.0.0.1:{p}" for p in ports]
        deadline = time.monotonic() + 30
        while True:  # poll until every node has joined and runs tasks
            try:
                with Client(addrs, connect_timeout=2) as c:
                    if len(c.addresses) >= nodes and c.submit(abs, -1, pure=False).result(5):
                        break
            except (OSError, TimeoutError, MeshUnavailable) as exc:  # not up yet
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the bench mesh did not come up: {exc!r}") from exc
            if time.monotonic() > deadline:
                raise RuntimeError("the bench mesh did not come up")
            time.sleep(0.2)
        yield addrs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def timed(run: Callable[[], Any]) -> float:
    start = time.perf_counter()
    run()
    return round(time.perf_counter() - start, 3)


def workloads(n: int, chunk: int) -> dict[str, Any]:
    import dask.array as da

    x = da.random.random((n, n), chunks=(chunk, chunk))
    return {"sum": x.sum(), "transpose": (x + x.T).mean(axis=0)}


def warm(scheduler: Any) -> None:
    import dask.array as da

    da.ones((100, 100), chunks=(50, 50)).sum().compute(scheduler=scheduler)


def mesh_figure(scheduler: Any, coll: Any, n: int, chunk: int) -> Any:
    try:
        return timed(lambda: coll.compute(scheduler=scheduler))
    except Exception as exc:  # recorded in the JSON line, with the size that failed
        return {"error": f"{type(exc).__name__}: {exc}"[:300], "n": n, "chunk": chunk}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dask", description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="array side (seed: 10000)")
    parser.add_argument("--chunk", type=int, default=1000, help="chunk side (seed: 1000)")
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    import logging

    import joblib
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    from mesh.client import Client

    logging.getLogger("distributed").setLevel(logging.ERROR)
    work = workloads(args.n, args.chunk)
    out: dict[str, Any] = {"n": args.n, "chunk": args.chunk, "calls": args.calls,
                           "transpose": {}}
    calls = [joblib.delayed(one_ms)(i) for i in range(args.calls)]

    with local_mesh(2) as addrs, Client(addrs) as client:
        warm(client.get)
        for name, coll in work.items():
            fig = mesh_figure(client.get, coll, args.n, args.chunk)
            (out if name == "sum" else out["transpose"])["mesh_s"] = fig
        with joblib.parallel_backend("mesh", client=client):
            joblib.Parallel(n_jobs=-1)(calls[:50])
            out["joblib_mesh_s"] = timed(lambda: joblib.Parallel(n_jobs=-1)(calls))

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, DaskClient(cluster) as dc:
        warm(dc.get)
        for name, coll in work.items():
            fig = timed(lambda c=coll: c.compute(scheduler=dc.get))
            (out if name == "sum" else out["transpose"])["dask_distributed_s"] = fig

    for name, coll in work.items():
        fig = timed(lambda c=coll: c.compute(scheduler="threads"))
        (out if name == "sum" else out["transpose"])["dask_threads_s"] = fig

    with joblib.parallel_backend("loky"):
        joblib.Parallel(n_jobs=-1)(calls[:50])
        out["joblib_loky_s"] = timed(lambda: joblib.Parallel(n_jobs=-1)(calls))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
