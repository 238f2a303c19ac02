"""Task throughput and round trip: mesh vs Dask vs ProcessPoolExecutor.

``python -m bench.tasks`` prints one JSON line:

* ``mesh_tasks_per_s`` / ``dask_tasks_per_s`` / ``pool_tasks_per_s`` -- ``map``
  of 10,000 no-op tasks, then ``gather`` (pool: ``list(ex.map(...))``).
* ``mesh_rtt_ms_p50`` / ``dask_rtt_ms_p50`` -- one ``submit(...).result()``
  at a time, 500 times, median in milliseconds.
* ``mesh_node_cpu_us_per_task`` / ``mesh_node_cpu_us_per_rtt`` -- CPU time
  (user and system) of both nodes and their workers per task of the ``map``
  and per round trip; ``mesh_client_cpu_us_per_task`` /
  ``mesh_client_cpu_us_per_rtt`` the same for this (the client's) process.
  Time on a shared machine varies with its load; CPU per task much less, so
  these compare two versions of mesh where the times cannot (Linux ``/proc``;
  null elsewhere).

Same number of worker processes everywhere: mesh is a local mesh of two
``mesh join`` nodes with one worker each, Dask a ``LocalCluster`` of two
single-threaded worker processes, the pool two processes. Dask is optional: if
``distributed`` is missing its figures are null.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def noop(x: Any = None) -> None:
    return None


def _free_port() -> int:
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 60000:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def _wait(probe: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def _cpu_seconds(pids: list[int]) -> float | None:
    """User plus system CPU seconds of these processes and their children
    (read from Linux ``/proc``), or None where that cannot be read."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        for pid in pids:
            kids = [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                    for c in (t / "children").read_text().split()]
            for p in (pid, *kids):
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
    except (OSError, ValueError, IndexError):
        return None
    return total


def _per(before: float | None, after: float | None, n: int) -> float | None:
    return None if before is None or after is None else (after - before) * 1e6 / n


def _throughput(map_and_gather: Any, n: int) -> float:
    start = time.perf_counter()
    map_and_gather(n)
    return n / (time.perf_counter() - start)


def _rtt_ms(one: Any, n: int) -> float:
    times = []
    for i in range(n):
        start = time.perf_counter()
        one(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_mesh(tasks: int, rtts: int, cpu: dict[str, float | None] | None = None
               ) -> tuple[float, float]:
    """Throughput and round trip of a local 2-node mesh; ``cpu`` (if given)
    receives the CPU figures of the module docstring."""
    from mesh.client import Client
    from mesh.config import DEFAULT
    from mesh.wire import Codec

    ports = [_free_port(), _free_port()]
    env = dict(os.environ)
    env.pop("MESH_SECRET", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    procs: list[subprocess.Popen] = []
    logdir = Path(tempfile.mkdtemp(prefix="mesh-bench-"))
    try:
        for i, port in enumerate(ports):
            seed = ports[1 - i]
            cmd = [sys.executable, "-m", "mesh.cli", "join", "--bind", f"127.0.0.1:{port}",
                   "--name", f"bench{i + 1}", "--seed", f"127.0.0.1:{seed}", "--workers", "1",
                   "--log-level", "warning"]
            with open(logdir / f"bench{i + 1}.log", "wb") as log:
                procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, env=env, cwd=REPO))
        codec = Codec(None, DEFAULT.max_http_body)

        def converged() -> bool:
            import urllib.request

            for port in ports:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/members",
                                             data=codec.seal({}), method="POST")
                with urllib.request.urlopen(req, timeout=1) as resp:
                    members = codec.open(resp.read())["members"]
                alive = [m for m in members if m["status"] == "alive"
                         and m["meta"].get("workers")]
                if len(alive) < 2:
                    return False
            return True

        _wait(converged, 20, "the two bench nodes to see each other")
        with Client([f"127.0.0.1:{p}" for p in ports]) as client:
            client.gather(client.map(noop, range(200), pure=False))  # warm up
            pids = [p.pid for p in procs]
            n0, c0 = _cpu_seconds(pids), time.process_time()
            tput = _throughput(
                lambda n: client.gather(client.map(noop, range(n), pure=False)), tasks)
            n1, c1 = _cpu_seconds(pids), time.process_time()
            rtt = _rtt_ms(lambda i: client.submit(noop, i, pure=False).result(), rtts)
            n2, c2 = _cpu_seconds(pids), time.process_time()
        if cpu is not None:
            cpu.update({"mesh_node_cpu_us_per_task": _per(n0, n1, tasks),
                        "mesh_node_cpu_us_per_rtt": _per(n1, n2, rtts),
                        "mesh_client_cpu_us_per_task": _per(c0, c1, tasks),
                        "mesh_client_cpu_us_per_rtt": _per(c1, c2, rtts)})
        return tput, rtt
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def bench_dask(tasks: int, rtts: int) -> tuple[float | None, float | None]:
    try:
        from distributed import Client as DaskClient
        from distributed import LocalCluster
    except ImportError:
        return None, None
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, DaskClient(cluster) as client:
        client.gather(client.map(noop, range(200), pure=False))
        tput = _throughput(lambda n: client.gather(client.map(noop, range(n), pure=False)),
                           tasks)
        rtt = _rtt_ms(lambda i: client.submit(noop, i, pure=False).result(), rtts)
    return tput, rtt


def bench_pool(tasks: int) -> float:
    with ProcessPoolExecutor(2) as ex:
        list(ex.map(noop, range(200)))
        return _throughput(lambda n: list(ex.map(noop, range(n))), tasks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tasks", description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rtts", type=int, default=500)
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args(argv)
    cpu: dict[str, float | None] = {}
    mesh_tput, mesh_rtt = bench_mesh(args.tasks, args.rtts, cpu)
    dask_tput, dask_rtt = (None, None) if args.no_dask else bench_dask(args.tasks, args.rtts)
    pool_tput = bench_pool(args.tasks)

    def r(x: float | None, nd: int = 1) -> float | None:
        return None if x is None else round(x, nd)

    print(json.dumps({
        "tasks": args.tasks,
        "rtts": args.rtts,
        "mesh_tasks_per_s": r(mesh_tput),
        "dask_tasks_per_s": r(dask_tput),
        "pool_tasks_per_s": r(pool_tput),
        "mesh_rtt_ms_p50": r(mesh_rtt, 3),
        "dask_rtt_ms_p50": r(dask_rtt, 3),
        "mesh_vs_dask_throughput": (None if dask_tput is None
                                    else round(mesh_tput / dask_tput, 1)),
        **{k: r(v) for k, v in cpu.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
