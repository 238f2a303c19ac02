"""bench.gossip runs real processes and reports one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mesh.config import DEFAULT
from tests.procs import FAST, REPO, config_flags


def test_gossip_bench_prints_one_json_line_with_convergence_and_detection() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-m", "bench.gossip", "--nodes", "3", *config_flags(FAST)],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    config = DEFAULT.with_(**FAST)
    assert result["nodes"] == 3
    assert result["config"]["probe_interval"] == FAST["probe_interval"]
    assert result["detection_bound_s"] == round(config.detection_bound(3), 3)
    assert 0 < result["converge_s"] < 10
    assert 0 < result["detect_s"] <= result["detection_bound_s"]
