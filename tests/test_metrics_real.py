"""``GET /metrics`` on real ``mesh join`` processes: Prometheus text format,
the contract names, and a task counter that grows by exactly the tasks run."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mesh import Client
from tests.procs import Cluster, MeshProc, wait_until
from tests.test_client_real import start_mesh


def scrape(proc: MeshProc) -> dict[str, dict[tuple, float]]:
    """``{family name: {sorted label items: value}}`` of one node's /metrics."""
    with urllib.request.urlopen(f"http://{proc.bind}/metrics", timeout=5) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("mesh_"), family.name
        for sample in family.samples:
            if family.type == "counter" and not sample.name.endswith("_created"):
                assert sample.name.endswith("_total"), sample.name
            key = tuple(sorted(sample.labels.items()))
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def completed(procs: list[MeshProc]) -> float:
    return sum(scrape(p)["mesh_tasks_completed_total"][()] for p in procs)


def double(x: int) -> int:
    return 2 * x


def test_metrics_parse_and_count_exactly_the_tasks_run(cluster: Cluster) -> None:
    procs = start_mesh(cluster, 3, config={})
    first = scrape(procs[0])
    members = first["mesh_members"]
    assert members == {(("status", "alive"),): 3, (("status", "suspect"),): 0,
                       (("status", "dead"),): 0, (("status", "left"),): 0}
    for family in ("mesh_tasks", "mesh_tasks_stolen_total", "mesh_result_bytes",
                   "mesh_gossip_probes_total", "mesh_gossip_probe_failures_total",
                   "mesh_dropped_frames_total", "mesh_workers"):
        assert family in first, family
    assert set(first["mesh_tasks"]) == {(("state", s),) for s in
                                        ("held", "waiting", "ready", "running", "stolen")}
    assert (("reason", "unauthenticated"),) in first["mesh_dropped_frames_total"]
    wait_until(lambda: scrape(procs[0])["mesh_gossip_probes_total"][()] > 0, 10,
               "gossip probes to be counted")

    before = completed(procs)
    n = 300
    with Client([p.bind for p in procs]) as client:
        futures = client.map(double, range(n), pure=False)
        assert client.gather(futures) == [2 * x for x in range(n)]
        # Every result is stored (so counted) before its future resolves.
        assert completed(procs) - before == n
        # Each result is held on R=2 nodes while the client holds its future.
        assert sum(scrape(p)["mesh_results_held"][()] for p in procs) >= 2 * n
        assert sum(scrape(p)["mesh_result_bytes"][()] for p in procs) > 0
        # Replicas and results crossed between nodes.
        assert sum(scrape(p)["mesh_peer_sent_bytes_total"][()] for p in procs) > 0
