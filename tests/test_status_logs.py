"""Logs of ``mesh join`` (``--log-level``, ``--log-format json``) and the
quiet ``mesh up --demo``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

from bench._ports import free_ports
from tests.procs import MESH, REPO, Cluster, wait_until


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


def test_mesh_up_demo_prints_its_summary_not_membership_lines() -> None:
    base = free_ports(2, consecutive=True)[0]
    env = dict(os.environ)
    env.pop("MESH_SECRET", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    up = subprocess.Popen([*MESH, "up", "--nodes", "2", "--demo", "--base-port", str(base)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=REPO)
    try:
        out, err = up.communicate(timeout=90)
    finally:
        if up.poll() is None:
            up.kill()
            out, err = up.communicate()
        for line in out.splitlines():  # `mesh up` ends its nodes; make sure of it
            if " pid " in line:
                pid = int(line.rsplit(" ", 1)[1])
                with contextlib.suppress(OSError):
                    if b"mesh.cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)
    assert up.returncode == 0, out + err
    assert "demo: result" in out, out
    both = out + err
    assert "member node" not in both and " INFO " not in both, both
