"""Campaigns: many seeds with every fault kind at once.

``python -m sim.campaign --workload W --seeds N [--start S] [--jobs J] [--json]``

Each seed runs the workload on a cluster (40 nodes for ``gossip``, 10 for
``tasks``, 8 for ``datasets``, 6 for ``data`` and ``actors``) with every fault kind rolling
at once: 8% loss, duplication and reordering, crashes, restarts, a two-way
and a one-way partition, pauses, a slow node, clock skew, a swizzle-clog and
a flapping link. Even seeds run in liveness mode, odd ones in safety mode.
Failures are printed with the
``mesh sim`` command that replays them; the exit status is 1 if any seed
failed.

``--json`` prints one document: ``{"workload", "seeds", "failed",
"by_invariant": {name: count}, "failures": [{"seed", "mode", "invariants",
"detail", "replay"}]}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from sim.network import NetConfig
from sim.scenario import Scenario

__all__ = ["EVERY_FAULT", "main", "play", "scenario"]

EVERY_FAULT: dict[str, int] = {
    "crash": 2, "restart": 2, "partition": 1, "one_way": 1, "pause": 2, "slow": 1,
    "skew": 1, "swizzle": 1, "flap": 1,
}
NETWORK = {"loss": 0.08, "duplicate": 0.02, "reorder": 0.05}
SIZES = {"gossip": (40, 120.0), "tasks": (10, 90.0), "datasets": (8, 90.0), "data": (6, 90.0),
         "actors": (6, 90.0)}


def scenario(workload: str, seed: int, nodes: int | None = None,
             duration: float | None = None) -> Scenario:
    n, d = SIZES[workload]
    sc = Scenario(name="campaign", workload=workload, nodes=nodes or n,
                  duration=duration or d, mode="liveness" if seed % 2 == 0 else "safety",
                  network=NetConfig(**NETWORK), rolling=dict(EVERY_FAULT))
    sc.validate()
    return sc


def replay(sc: Scenario, seed: int) -> str:
    parts = ["mesh", "sim", "--workload", sc.workload, "--nodes", str(sc.nodes),
             "--seed", str(seed), "--duration", str(sc.duration), "--mode", sc.mode,
             "--loss", str(NETWORK["loss"]), "--dup", str(NETWORK["duplicate"]),
             "--reorder", str(NETWORK["reorder"])]
    for name, count in EVERY_FAULT.items():
        parts += [f"--{name.replace('_', '-')}", str(count)]
    return shlex.join(parts)


def play(job: tuple[str, int, int | None, float | None]) -> dict[str, Any] | None:
    """One seed; the failure record, or None if every invariant held."""
    from sim.runner import simulate

    workload, seed, nodes, duration = job
    sc = scenario(workload, seed, nodes, duration)
    result = simulate(sc, seed)
    bad = [i for i in result.invariants if i.status == "fail"]
    if not bad:
        return None
    return {"seed": seed, "mode": sc.mode, "invariants": [i.name for i in bad],
            "detail": "; ".join(f"{i.name}: {i.detail}" for i in bad),
            "replay": replay(sc, seed)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.campaign",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workload", choices=sorted(SIZES), default="gossip")
    p.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    p.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--nodes", type=int,
                   help="cluster size (default 40 gossip, 10 tasks, 8 datasets, 6 data, "
                        "6 actors)")
    p.add_argument("--duration", type=float, help="simulated seconds per seed")
    p.add_argument("--jobs", type=int, default=1, help="processes (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    args = p.parse_args(argv)
    jobs = [(args.workload, s, args.nodes, args.duration)
            for s in range(args.start, args.start + args.seeds)]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            outcomes = list(pool.map(play, jobs))
    else:
        outcomes = []
        for job in jobs:
            outcomes.append(play(job))
            if not args.json:
                print(f"\rseed {job[1]}: {sum(o is not None for o in outcomes)} failed so far",
                      end="", file=sys.stderr, flush=True)
        if not args.json:
            print(file=sys.stderr)
    failures = [o for o in outcomes if o is not None]
    by: dict[str, int] = {}
    for f in failures:
        for name in f["invariants"]:
            by[name] = by.get(name, 0) + 1
    doc = {"workload": args.workload, "seeds": args.seeds, "failed": len(failures),
           "by_invariant": dict(sorted(by.items())), "failures": failures}
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"{args.workload}: {len(failures)} of {args.seeds} seeds failed "
              f"(seeds {args.start}..{args.start + args.seeds - 1})")
        for f in failures:
            print(f"  seed {f['seed']} ({f['mode']}): {f['detail']}\n    replay: {f['replay']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
