"""Actor calls: mesh (durable and volatile) vs Dask actors vs Ray, and failover.

``python -m bench.actors`` prints one JSON line:

* ``mesh_durable_calls_per_s`` / ``mesh_volatile_calls_per_s`` -- 10,000
  ``incr()`` calls on one handle made without waiting, then gathered, on a
  local mesh of two ``mesh join`` nodes (``durable=True`` keeps the state on
  R = 2 nodes before each answer; ``durable=False`` keeps it in the host).
* ``mesh_durable_rtt_ms_p50`` / ``mesh_volatile_rtt_ms_p50`` -- one call at a
  time, median in milliseconds of 500 calls to an actor hosted by the
  client's node and 500 to one hosted by the other node (their medians:
  ``..._rtt_ms_p50_entry_hosts`` and ``..._rtt_ms_p50_other_hosts``). Calls
  go straight to the host (mesh.actors._direct); the other node's 500 are
  measured in blocks of 50 alternating with blocks of 50 sent through the
  client's node, which relays them (``..._rtt_ms_p50_other_hosts_relayed``).
* ``dask_calls_per_s`` / ``dask_rtt_ms_p50`` -- the same with a Dask actor
  (``client.submit(Counter, actor=True)``) on ``LocalCluster(n_workers=2,
  threads_per_worker=1)``; ``ray_calls_per_s`` / ``ray_rtt_ms_p50`` with a Ray
  actor, null when Ray is not importable.
* ``failover_s`` -- from ``kill -9`` of a durable actor's host to the result of
  the next call, on a mesh of three nodes (with two, the survivor alone could
  not hold R = 2 copies, so durable calls would wait); ``detection_bound_s``
  is ``Config.detection_bound(3)``, the goal's yardstick.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._ports import free_ports

REPO = Path(__file__).resolve().parent.parent


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n


def _rate(run: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    run(n)
    return n / (time.perf_counter() - start)


def _times(one: Callable[[], Any], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        one()
        times.append(time.perf_counter() - start)
    return times


def _rtt_ms(one: Callable[[], Any], n: int) -> float:
    return statistics.median(_times(one, n)) * 1000


def _start_nodes(n: int) -> tuple[list[str], list[subprocess.Popen]]:
    ports = free_ports(n)
    env = {k: v for k, v in os.environ.items() if k != "MESH_SECRET"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    logdir = Path(tempfile.mkdtemp(prefix="mesh-bench-actors-"))
    procs = []
    for i, port in enumerate(ports):
        cmd = [sys.executable, "-m", "mesh.cli", "join", "--bind", f"127.0.0.1:{port}",
               "--name", f"a{i + 1}", "--seed", f"127.0.0.1:{ports[i - 1]}",
               "--workers", "1", "--log-level", "warning"]
        with open(logdir / f"a{i + 1}.log", "wb") as log:
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=env, cwd=REPO))
    return [f"127.0.0.1:{p}" for p in ports], procs


def _wait_up(addrs: list[str]) -> None:
    from mesh import Client, MeshUnavailable

    deadline = time.monotonic() + 60
    while True:  # poll until every node joined and hosts actors
        try:
            with Client(addrs, connect_timeout=2) as c:
                probe = c.actor(Counter, durable=False)
                if len(c.addresses) >= len(addrs) and probe.incr().result(10) == 1:
                    probe.close()
                    return
        except (OSError, TimeoutError, MeshUnavailable) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bench mesh did not come up: {exc!r}") from exc
        time.sleep(0.2)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait(10)


def _placed(client: Any, durable: bool) -> dict[str, Any]:
    """Two actors: one hosted by the client's node, one by the other (the
    round trip of the second has two more network hops)."""
    found: dict[str, Any] = {}
    for _ in range(64):
        a = client.actor(Counter, durable=durable)
        where = "entry" if client.who_has(a)[a.key][0] == client.node else "other"
        if where in found:
            a.close()
        else:
            found[where] = a
        if len(found) == 2:
            break
    return found


def bench_mesh(calls: int, rtts: int) -> dict[str, float]:
    """Throughput and round trip on two nodes. The round trip is measured on
    an actor hosted by the client's node and on one hosted by the other
    node, ``rtts`` calls each; ``*_rtt_ms_p50`` is the median of both."""
    from mesh import Client

    addrs, procs = _start_nodes(2)
    out: dict[str, float] = {}
    try:
        _wait_up(addrs)
        with Client(addrs) as client:
            for kind, durable in (("durable", True), ("volatile", False)):
                a = client.actor(Counter, durable=durable)
                client.gather([a.incr() for _ in range(500)])  # warm up
                out[f"mesh_{kind}_calls_per_s"] = _rate(
                    lambda n, a=a: client.gather([a.incr() for _ in range(n)]), calls)
                a.close()
                samples: list[float] = []
                for where, b in sorted(_placed(client, durable).items()):
                    client.gather([b.incr() for _ in range(200)])  # warm up
                    if where == "entry":
                        times = _times(lambda b=b: b.incr().result(), rtts)
                    else:
                        times, relayed = _direct_and_relayed(client, b, rtts)
                        out[f"mesh_{kind}_rtt_ms_p50_other_hosts_relayed"] = \
                            statistics.median(relayed) * 1000
                    out[f"mesh_{kind}_rtt_ms_p50_{where}_hosts"] = statistics.median(times) * 1000
                    samples += times
                    b.close()
                out[f"mesh_{kind}_rtt_ms_p50"] = statistics.median(samples) * 1000
        return out
    finally:
        _stop(procs)


def _direct_and_relayed(client: Any, b: Any, n: int) -> tuple[list[float], list[float]]:
    """``n`` round trips to actor ``b`` (hosted by the other node) straight
    to its host, and ``n`` through the client's node, which relays them (the
    route to the host refused), in alternating blocks of 50 so both see the
    same load."""
    direct = client._core.direct
    host = client.who_has(b)[b.key][0]
    straight: list[float] = []
    relayed: list[float] = []
    while len(straight) < n:
        k = min(50, n - len(straight))
        for out, refuse in ((straight, False), (relayed, True)):
            with client._core.cond:
                (direct.refused.add if refuse else direct.refused.discard)(host)
            b.incr().result()  # the first call of a block may still take the old way
            out += _times(lambda: b.incr().result(), k)
    with client._core.cond:
        direct.refused.discard(host)
    return straight, relayed


def bench_failover() -> float:
    """Seconds from kill -9 of a durable actor's host to the next call's
    result, on three nodes (R = 2 copies must stay possible)."""
    from mesh import Client

    addrs, procs = _start_nodes(3)
    try:
        _wait_up(addrs)
        with Client(addrs) as client:
            a = client.actor(Counter, name="failover")
            a.incr().result()
            host = int(client.who_has(a)[a.key][0][1:]) - 1
        with Client([x for i, x in enumerate(addrs) if i != host]) as client:
            a = client.get_actor("failover")
            before = a.incr(0).result()
            start = time.perf_counter()
            procs[host].kill()
            procs[host].wait(10)
            assert a.incr().result(timeout=120) == before + 1
            return time.perf_counter() - start
    finally:
        _stop(procs)


def bench_dask(calls: int, rtts: int) -> tuple[float | None, float | None]:
    try:
        from distributed import Client as DaskClient
        from distributed import LocalCluster
    except ImportError:
        return None, None
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, DaskClient(cluster) as client:
        counter = client.submit(Counter, actor=True).result()
        [f.result() for f in [counter.incr() for _ in range(200)]]
        rate = _rate(lambda n: [f.result() for f in [counter.incr() for _ in range(n)]], calls)
        rtt = _rtt_ms(lambda: counter.incr().result(), rtts)
    return rate, rtt


def bench_ray(calls: int, rtts: int) -> tuple[float | None, float | None]:
    try:
        import ray
    except ImportError:
        return None, None
    ray.init(num_cpus=2, include_dashboard=False, logging_level="error")
    try:
        counter = ray.remote(Counter).remote()
        ray.get([counter.incr.remote() for _ in range(200)])
        rate = _rate(lambda n: ray.get([counter.incr.remote() for _ in range(n)]), calls)
        rtt = _rtt_ms(lambda: ray.get(counter.incr.remote()), rtts)
    finally:
        ray.shutdown()
    return rate, rtt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.actors", description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--rtts", type=int, default=500)
    args = ap.parse_args(argv)
    from mesh.config import DEFAULT

    mesh = bench_mesh(args.calls, args.rtts)
    failover = bench_failover()
    dask_rate, dask_rtt = bench_dask(args.calls, args.rtts)
    ray_rate, ray_rtt = bench_ray(args.calls, args.rtts)
    out: dict[str, Any] = {
        "mesh_durable_calls_per_s": round(mesh["mesh_durable_calls_per_s"]),
        "mesh_volatile_calls_per_s": round(mesh["mesh_volatile_calls_per_s"]),
        "mesh_durable_rtt_ms_p50": round(mesh["mesh_durable_rtt_ms_p50"], 3),
        "mesh_volatile_rtt_ms_p50": round(mesh["mesh_volatile_rtt_ms_p50"], 3),
        **{k: round(v, 3) for k, v in sorted(mesh.items()) if k.endswith("_hosts")},
        "dask_calls_per_s": None if dask_rate is None else round(dask_rate),
        "dask_rtt_ms_p50": None if dask_rtt is None else round(dask_rtt, 3),
        "ray_calls_per_s": None if ray_rate is None else round(ray_rate),
        "ray_rtt_ms_p50": None if ray_rtt is None else round(ray_rtt, 3),
        "failover_s": round(failover, 2),
        "detection_bound_s": round(DEFAULT.detection_bound(3), 1),
        "calls": args.calls,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
