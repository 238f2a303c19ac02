"""Durability per call on real ``mesh join`` processes: a ``replicas=1``
value lives on one node; ``kill -9`` of that node while a graph still needs
the value makes the key's new owner compute it again (lineage), and the
graph's result is right."""

from __future__ import annotations

import time
from pathlib import Path

from mesh.client import Client
from tests.procs import Cluster, MeshProc, api, metrics, wait_until
from tests.test_client_real import owner_of, start_mesh


def counted(path: str, x: int) -> int:
    """``2 * x``, appending a line to ``path`` each time it runs."""
    with open(path, "a") as f:
        f.write("run\n")
    return 2 * x


def wait_for_file(path: str) -> int:
    """A task that returns once ``path`` exists (the test creates it)."""
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)
    return 1


def add(a: int, b: int) -> int:
    return a + b


def key_where(prefix: str, procs: list[MeshProc], test) -> str:
    return next(k for k in (f"{prefix}-{i}" for i in range(10_000)) if test(owner_of(k, procs)))


def test_kill_9_of_the_only_holder_of_a_needed_replicas_1_value_recomputes_it(
        cluster: Cluster, tmp_path: Path) -> None:
    procs = start_mesh(cluster, 4)
    entry, victim = procs[0], procs[1]
    runs, gate_file = tmp_path / "runs", tmp_path / "gate"
    kx = key_where("x", procs, lambda p: p[0] == victim.name)
    kz = key_where("z", procs, lambda p: p[0] == victim.name)
    kg = key_where("g", procs, lambda p: victim.name not in p)
    with Client([entry.bind]) as client:
        x = client.submit(counted, str(runs), 21, key=kx, replicas=1)
        assert x.result(20) == 42
        holders = [p.name for p in procs if holds(p, kx)]
        assert holders == [victim.name], holders  # one copy, on its owner
        gate = client.submit(wait_for_file, str(gate_file), key=kg)
        z = client.submit(add, x, gate, key=kz)  # needs x, on the node that dies
        victim.popen.kill()
        victim.popen.wait(5)
        wait_until(lambda: entry.statuses().get(victim.name) == "dead", 20, "the victim dead")
        gate_file.write_text("go")
        assert z.result(60) == 43
        assert runs.read_text().count("run") == 2  # x ran again, from its spec
        survivors = [p for p in procs if p is not victim]
        assert sum(metrics(p.addr).get("exec_lineage_recomputed", 0) for p in survivors) >= 1


def holds(p: MeshProc, key: str) -> bool:
    """Whether node ``p`` holds a copy of ``key``'s result."""
    return api(p.addr, "/v1/exec/stats", {"key": key})["key"]["result"] is not None


def test_a_graph_submitted_again_right_after_its_release_does_not_stall(
        cluster: Cluster) -> None:
    procs = start_mesh(cluster)
    with Client([procs[0].bind]) as client:
        for _ in range(3):
            b = client.submit(add, 1, 0, key="kb")
            c = client.submit(add, 1, b, key="kc")
            assert c.result(10) == 2
            del b, c  # released: the nodes forget kb and kc
            t0 = time.monotonic()
            b = client.submit(add, 1, 0, key="kb")
            c = client.submit(add, 1, b, key="kc")
            e = client.submit(sum, [1, b, c], key="ke")
            assert e.result(30) == 4
            took = time.monotonic() - t0
            assert took < 4.0, f"took {took:.1f} s"  # the stall it pins waited 2 exec ticks (10 s)
            del b, c, e
