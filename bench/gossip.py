"""Gossip benchmark with real processes: convergence and failure detection.

    python -m bench.gossip --nodes 5 [--set probe_interval=0.5 ...]

Starts ``--nodes`` ``mesh join`` processes on 127.0.0.1 and prints ONE JSON
line:

* ``converge_s`` -- from the start of the last process until every node lists
  every node as alive;
* ``detect_s`` -- from ``kill -9`` of one node until every survivor lists it
  as dead;
* ``detection_bound_s`` -- ``Config.detection_bound(nodes)``, the documented
  upper bound, as the reference figure to compare ``detect_s`` with;
* ``config`` -- every Config value the nodes ran with.

Every process is ended before it exits, whatever happens. Wall-clock timing
is the point here, so this module reads the clock itself (it is a harness,
not protocol code).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench._ports import free_ports
from mesh.cli import config_overrides
from mesh.config import DEFAULT, Config
from mesh.errors import ConfigError, WireError
from mesh.wire import Codec

POLL = 0.02
"""Seconds between polls of the nodes; the resolution of the figures."""


def _statuses(port: int, codec: Codec) -> dict[str, str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/members", data=codec.seal({}), method="POST"
    )
    with urllib.request.urlopen(req, timeout=2.0) as resp:
        reply = codec.open(resp.read())
    return {m["name"]: m["status"] for m in reply["members"]}


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``pred()``; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if pred():
                return time.monotonic()
        except (OSError, urllib.error.URLError, WireError, KeyError):
            pass  # a node not serving yet counts as "not yet"
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL)


def bench(nodes: int, config: Config, overrides: list[str], timeout: float) -> dict:
    """Run the benchmark; returns the result record."""
    if nodes < 2:
        raise ConfigError("--nodes must be at least 2 (one is killed)")
    ports = free_ports(nodes)
    names = [f"b{i + 1}" for i in range(nodes)]
    codec = Codec(None, config.max_http_body)
    env = dict(os.environ)
    env.pop("MESH_SECRET", None)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as tmp:
        try:
            for i, (name, port) in enumerate(zip(names, ports, strict=True)):
                seed = ports[0] if i else ports[1]
                args = [sys.executable, "-m", "mesh.cli", "join", "--bind", f"127.0.0.1:{port}",
                        "--name", name, "--seed", f"127.0.0.1:{seed}", "--log-level", "warning"]
                for pair in overrides:
                    args += ["--set", pair]
                with open(Path(tmp) / f"{name}.log", "wb") as log:
                    procs.append(subprocess.Popen(
                        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        env=env, cwd=repo,
                    ))
            started = time.monotonic()

            def converged() -> bool:
                want = dict.fromkeys(names, "alive")
                return all(_statuses(p, codec) == want for p in ports)

            converge_at = _wait(converged, timeout, "convergence")

            victim = nodes - 1
            survivors = ports[:victim]
            killed = time.monotonic()
            procs[victim].send_signal(signal.SIGKILL)

            def detected() -> bool:
                return all(_statuses(p, codec).get(names[victim]) == "dead" for p in survivors)

            bound = config.detection_bound(nodes)
            detect_at = _wait(detected, bound * 2 + 10, "detection")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            for p in procs:
                p.wait(10)
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "extra"}
    return {
        "bench": "gossip",
        "nodes": nodes,
        "converge_s": round(converge_at - started, 3),
        "detect_s": round(detect_at - killed, 3),
        "detection_bound_s": round(bound, 3),
        "poll_s": POLL,
        "config": settings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gossip", description="Gossip convergence and detection times."
    )
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Config override passed to every node, e.g. probe_interval=0.5")
    parser.add_argument("--timeout", type=float, default=60.0, help="convergence deadline (s)")
    args = parser.parse_args(argv)
    try:
        config = DEFAULT.with_(**config_overrides(args.set))
        result = bench(args.nodes, config, args.set, args.timeout)
    except (ConfigError, TimeoutError) as exc:
        print(f"bench.gossip: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
