"""``mesh status`` on a real mesh, and the event stream the dashboard reads:
built only while someone asks, a few KB per second."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from mesh import Client
from tests.procs import Cluster, MeshProc, api, run_cli, wait_until
from tests.test_client_real import start_mesh


@pytest.fixture(scope="module")
def mesh3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MeshProc]]:
    cluster = Cluster(tmp_path_factory.mktemp("status3"))
    try:
        yield start_mesh(cluster, 3, config={})
    finally:
        cluster.close()


def served(procs: list[MeshProc]) -> int:
    """Per-node figures the nodes have handed to peers so far."""
    return sum(api(p.addr, "/v1/metrics").get("ops_stats_served", 0) for p in procs)


def read_events(proc: MeshProc, n: int) -> list[bytes]:
    """The first ``n`` snapshot events of the node's stream, raw."""
    conn = http.client.HTTPConnection(proc.addr[0], proc.addr[1], timeout=10)
    try:
        conn.request("GET", "/events")
        reply = conn.getresponse()
        assert reply.status == 200
        assert reply.getheader("Content-Type") == "text/event-stream"
        events: list[bytes] = []
        current = b""
        while len(events) < n:
            line = reply.readline()
            if line == b"\n":
                if current.startswith(b"event: snapshot"):
                    events.append(current)
                current = b""
            else:
                current += line
        return events
    finally:
        conn.close()


def square(x: int) -> int:
    return x * x


def test_the_stream_is_built_only_while_a_page_reads_it(mesh3: list[MeshProc]) -> None:
    # The mesh has run for seconds (start, convergence) with no page open:
    # no node asked any other for figures.
    assert served(mesh3) == 0
    events = read_events(mesh3[0], 3)
    snap = json.loads(events[-1].split(b"data: ", 1)[1])
    assert sorted(snap["nodes"]) == sorted(p.name for p in mesh3)
    assert snap["counts"]["alive"] == 3
    assert served(mesh3) >= 2  # the two peers answered at least once each
    # A few KB per second: one snapshot a second, each small for 3 nodes.
    assert max(len(e) for e in events) < 6_000, [len(e) for e in events]


def test_mesh_status_prints_one_table_of_the_whole_mesh(mesh3: list[MeshProc]) -> None:
    done = run_cli("status", "--address", mesh3[1].bind)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == f"mesh seen from {mesh3[1].name}: 3 alive"
    assert lines[1].split() == ["NAME", "STATUS", "WORKERS", "QUEUED", "RUNNING", "TASKS/S",
                                "COMPLETED", "STOLEN", "VALUES", "BYTES", "HELD", "MEMORY",
                                "SPILLED"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == sorted(p.name for p in mesh3)
    assert all(r[1] == "alive" and r[2] == "1" for r in rows)


def test_mesh_status_json_counts_the_tasks_run(mesh3: list[MeshProc]) -> None:
    def status() -> dict:
        done = run_cli("status", "--address", mesh3[0].bind, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    before = status()
    assert before["members"] == {"alive": 3, "suspect": 0, "dead": 0, "left": 0}
    row = before["nodes"][0]
    for key in ("name", "status", "address", "incarnation", "share", "workers", "queued",
                "running", "tasks_per_s", "completed", "stolen", "values", "bytes_held"):
        assert key in row, key
    with Client([p.bind for p in mesh3]) as client:
        futures = client.map(square, range(120), pure=False)
        assert client.gather(futures)[-1] == 119 * 119
        done_before = sum(r["completed"] for r in before["nodes"])

        def ran() -> dict | None:  # a snapshot is up to FRESH (0.9 s) old
            snap = status()
            return snap if sum(r["completed"] for r in snap["nodes"]) > done_before + 119 else None

        after = wait_until(ran, 10, "status to count the tasks")
        assert sum(r["completed"] for r in after["nodes"]) - done_before == 120
        assert sum(r["values"] for r in after["nodes"]) >= 240  # R=2 copies while held
        assert sum(r["bytes_held"] for r in after["nodes"]) > 0
        assert sum(r["tasks_per_s"] for r in after["nodes"]) > 0


def test_mesh_status_says_when_no_node_answers() -> None:
    from bench._ports import free_ports

    done = run_cli("status", "--address", f"127.0.0.1:{free_ports(1)[0]}", "--timeout", "2")
    assert done.returncode == 1
    assert "no mesh node answered" in done.stderr
