"""Simulator throughput: ``python -m bench.sim`` prints one JSON line.

It runs the steady-state scenario (no faults; nodes join spread over the first
seconds) at 1,000 nodes for 120 simulated seconds and at 10,000 nodes for a
shorter time (``--big-duration``, default 5 s: the join of 10,000 members is
O(N^2) work and O(N^2) memory inside the gossip core -- every node ends up
holding a ``Member`` for every other, 10^8 of them, about 11 GB even as
interned tuples), and reports for each run
``nodes``, ``sim_seconds``, ``wall_seconds`` and ``events_per_s`` (trace
events per wall second), plus the 1,000-node figures at top level.
"""

from __future__ import annotations

import argparse
import json
import sys

from sim.runner import simulate
from sim.scenario import Scenario


def measure(nodes: int, duration: float, seed: int = 1) -> dict[str, object]:
    """One run without faults; its size, speed and outcome."""
    sc = Scenario(name=f"bench-{nodes}", nodes=nodes, duration=duration, mode="safety")
    r = simulate(sc, seed)
    return {
        "nodes": nodes,
        "sim_seconds": r.sim_seconds,
        "wall_seconds": round(r.wall_seconds, 2),
        "events": r.events,
        "events_per_s": round(r.events / r.wall_seconds) if r.wall_seconds else None,
        "loop_callbacks_per_s": round(r.callbacks / r.wall_seconds) if r.wall_seconds else None,
        "messages_sent": r.messages_sent,
        "sim_s_per_wall_s": round(r.sim_seconds / r.wall_seconds, 3) if r.wall_seconds else None,
        "join_converge_s": r.join_converge_s,
        "ok": r.ok,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--big-nodes", type=int, default=10_000)
    p.add_argument("--big-duration", type=float, default=5.0,
                   help="simulated seconds for the big run (0 skips it)")
    args = p.parse_args(argv)
    runs = [measure(args.nodes, args.duration)]
    print(json.dumps(runs[0]), file=sys.stderr, flush=True)  # in case the big run dies
    if args.big_nodes and args.big_duration > 0:
        big = measure(args.big_nodes, args.big_duration)
        big["note"] = (f"{args.big_duration:g} simulated seconds, not 120: the join of "
                       f"{args.big_nodes} members dominates and is O(N^2) in time and memory "
                       "in the gossip core")
        runs.append(big)
    first = runs[0]
    doc = {"runs": runs, **{k: first[k] for k in ("nodes", "sim_seconds", "wall_seconds",
                                                    "events_per_s")}}
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
