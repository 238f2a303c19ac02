"""Logs of ``mesh join`` (``--log-level``, ``--log-format json``) and the
quiet ``mesh up --demo``."""

from __future__ import annotations

import json
import signal

from mesh.ops._logs import up_log_level
from tests.procs import Cluster, wait_until


def test_log_format_json_writes_one_object_per_line(cluster: Cluster) -> None:
    proc = cluster.start("jlog", extra=["--workers", "1", "--log-format", "json"])
    wait_until(lambda: "listening on" in proc.log(), 15, "the node to log that it listens")
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    records = [json.loads(line) for line in proc.log().splitlines() if line.strip()]
    assert records, proc.log()
    for r in records:
        assert set(r) >= {"ts", "level", "node", "logger", "message"}, r
        assert r["node"] == "jlog" and r["ts"].endswith("Z")
    assert any(r["level"] == "info" and "listening on" in r["message"] for r in records)


def test_log_level_warning_drops_info_lines(cluster: Cluster) -> None:
    a = cluster.start("quiet", extra=["--workers", "1", "--log-level", "warning"])
    b = cluster.start("loud", seeds=[a], extra=["--workers", "1"])
    cluster.wait_converged([a, b], 15)
    assert "member quiet" in b.log()
    assert " INFO " not in a.log() and "member loud" not in a.log(), a.log()


def test_mesh_up_demo_runs_its_nodes_at_warning_unless_told_otherwise() -> None:
    from mesh.cli import build_parser
    from mesh.cli.up import node_args

    def level(*argv: str) -> str:
        args = build_parser().parse_args(["up", "--nodes", "2", *argv])
        up_log_level(args)
        flags = node_args(args, 1)
        return flags[flags.index("--log-level") + 1]

    assert level("--demo") == "warning"  # no membership lines: see the test above
    assert level() == "info"
    assert level("--demo", "--log-level", "debug") == "debug"
