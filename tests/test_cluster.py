"""Real ``mesh join`` processes on 127.0.0.1: joining, failure detection,
graceful leave, rejoin and late seeds. Every process is ended by the
``cluster`` fixture, pass or fail."""

from __future__ import annotations

import json
import os
import re
import signal
import time

from mesh.config import DEFAULT
from tests.procs import FAST, Cluster, MeshProc, free_ports, run_cli, wait_until

FAST_CONFIG = DEFAULT.with_(**FAST)


def _all_say(observers: list[MeshProc], name: str, status: str) -> bool:
    return all(p.statuses().get(name) == status for p in observers)


def _event_lines(proc: MeshProc, name: str) -> list[str]:
    """The status changes ``proc`` logged about ``name``, in order (``update``
    events, e.g. a service publishing metadata, are left out)."""
    words = re.findall(rf"member {re.escape(name)} (\w+) at", proc.log())
    return [w for w in words if w != "update"]


def test_nodes_on_default_config_join_and_every_node_lists_all_alive(cluster: Cluster) -> None:
    procs = cluster.start_many(4)
    cluster.wait_converged(procs, timeout=15)
    out = run_cli("members", "--address", procs[2].bind, "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["name"] for r in rows] == ["n1", "n2", "n3", "n4"]
    for r in rows:
        assert r["status"] == "alive"
        assert type(r["incarnation"]) is int and r["incarnation"] >= 0
        assert r["meta"]["workers"] == (os.cpu_count() or 1)  # the --workers default
        assert r["address"] == dict((p.name, p.bind) for p in procs)[r["name"]]
    table = run_cli("members", "--address", procs[0].bind)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "STATUS", "INCARNATION", "METADATA"]
    assert [line.split()[:3] for line in lines[1:]] == [[p.name, p.bind, "alive"] for p in procs]
    ring = run_cli("ring", "--address", procs[1].bind, "--json")
    assert ring.returncode == 0, ring.stderr
    shares = json.loads(ring.stdout)
    assert sorted(shares) == ["n1", "n2", "n3", "n4"]
    assert abs(sum(shares.values()) - 1.0) < 1e-6
    ring_table = run_cli("ring", "--address", procs[1].bind)
    assert ring_table.returncode == 0, ring_table.stderr
    assert [line.split()[0] for line in ring_table.stdout.splitlines()] == [
        "NAME", "n1", "n2", "n3", "n4"
    ]


def test_sigterm_makes_the_others_mark_the_node_left_not_dead(cluster: Cluster) -> None:
    procs = cluster.start_many(3)
    cluster.wait_converged(procs, timeout=15)
    leaver, survivors = procs[1], [procs[0], procs[2]]
    t0 = time.monotonic()
    leaver.signal(signal.SIGTERM)
    wait_until(lambda: _all_say(survivors, leaver.name, "left"), 5, "left everywhere")
    assert time.monotonic() - t0 < DEFAULT.probe_interval * 3
    assert leaver.wait(timeout=10) == 0, leaver.log()
    for p in survivors:
        assert _event_lines(p, leaver.name) == ["join", "left"], p.log()
    assert "leaving the mesh" in leaver.log()


def test_kill9_node_is_suspected_then_dead_everywhere_within_the_detection_bound(
    cluster: Cluster,
) -> None:
    procs = cluster.start_many(4, config=FAST)
    cluster.wait_converged(procs, timeout=10)
    victim, survivors = procs[2], [p for p in procs if p is not procs[2]]
    bound = FAST_CONFIG.detection_bound(len(procs))
    t0 = time.monotonic()
    victim.signal(signal.SIGKILL)
    wait_until(lambda: _all_say(survivors, victim.name, "dead"), bound + 5, "dead everywhere")
    elapsed = time.monotonic() - t0
    assert elapsed <= bound, f"detected in {elapsed:.2f}s, bound {bound:.2f}s\n{cluster.logs()}"
    for p in survivors:
        assert _event_lines(p, victim.name) == ["join", "suspect", "dead"], p.log()
        others = {q.name for q in survivors}
        assert {n for n, s in p.statuses().items() if s == "alive"} == others


def test_kill9_on_default_config_is_detected_within_the_detection_bound(cluster: Cluster) -> None:
    procs = cluster.start_many(4)
    cluster.wait_converged(procs, timeout=15)
    victim, survivors = procs[0], procs[1:]
    bound = DEFAULT.detection_bound(len(procs))
    t0 = time.monotonic()
    victim.signal(signal.SIGKILL)
    wait_until(lambda: _all_say(survivors, victim.name, "dead"), bound + 5, "dead everywhere")
    elapsed = time.monotonic() - t0
    assert elapsed <= bound, f"detected in {elapsed:.2f}s, bound {bound:.2f}s"
    for p in survivors:
        assert _event_lines(p, victim.name) == ["join", "suspect", "dead"], p.log()


def test_restarted_node_rejoins_with_a_higher_incarnation_and_is_alive(cluster: Cluster) -> None:
    procs = cluster.start_many(3, config=FAST)
    cluster.wait_converged(procs, timeout=10)
    victim, survivors = procs[1], [procs[0], procs[2]]
    victim.signal(signal.SIGKILL)
    victim.wait(10)
    bound = FAST_CONFIG.detection_bound(3)
    wait_until(lambda: _all_say(survivors, victim.name, "dead"), bound + 5, "dead everywhere")
    dead_incarnation = survivors[0].members()[victim.name]["incarnation"]

    again = cluster.start(victim.name, victim.addr[1], [procs[0].addr], FAST)

    def rejoined() -> bool:
        for p in [*survivors, again]:
            m = p.members()[victim.name]
            if m["status"] != "alive" or m["incarnation"] <= dead_incarnation:
                return False
        return True

    wait_until(rejoined, 10, f"{victim.name} alive again with a higher incarnation")
    cluster.wait_converged([*survivors, again], timeout=5)
    for p in survivors:
        assert _event_lines(p, victim.name)[-1] == "join", p.log()


def test_node_whose_seeds_are_not_up_retries_says_so_and_joins_once_they_start(
    cluster: Cluster,
) -> None:
    p1, p2, p3 = free_ports(3)
    late = cluster.start("late", p3, [("127.0.0.1", p1), ("127.0.0.1", p2)], FAST)
    wait_until(
        lambda: late.log().count("seeds not reachable yet") >= 2,
        10,
        "the node to say it keeps retrying",
    )
    assert late.running()
    assert late.statuses() == {"late": "alive"}
    # only the second seed comes up; the node must still find it
    second = cluster.start("second", p2, [], FAST)
    cluster.wait_converged([late, second], timeout=10)
    first = cluster.start("first", p1, [second.addr], FAST)
    cluster.wait_converged([late, second, first], timeout=10)
    assert f"joined the mesh through 127.0.0.1:{p2}" in late.log()
