"""Measure the loss level up to which no live node is declared dead.

``python -m sim.calibrate`` runs clusters with nothing but uniform datagram
loss, several seeds per loss level, and counts declarations of death about
nodes that are up (no fault excuses them: the checker's loss threshold is set
to 1.0 for these runs). It prints one JSON line per level and a summary; the
figures behind :data:`sim.invariants.LOSS_THRESHOLD` come from here.
"""

from __future__ import annotations

import argparse
import json
import sys

from sim.network import NetConfig
from sim.runner import Simulation
from sim.scenario import Scenario


def false_deaths(nodes: int, duration: float, loss: float, seed: int) -> int:
    """Declarations of death about live nodes in one lossy run."""
    sc = Scenario(name=f"calibrate-{loss}", nodes=nodes, duration=duration, mode="safety",
                  network=NetConfig(loss=loss))
    sim = Simulation(sc, seed)
    sim.observer.loss_threshold = 1.0  # count every declaration, excuse none
    sim.observer.loss_changed(loss, 0.0)
    return len(sim.run().false_dead)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.calibrate")
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--duration", type=float, default=120.0)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--levels", default="0.05,0.10,0.15,0.20,0.25,0.30,0.40")
    args = p.parse_args(argv)
    clean: float | None = None
    dirty = False
    for level in sorted(float(x) for x in args.levels.split(",")):
        counts = [false_deaths(args.nodes, args.duration, level, s)
                  for s in range(1, args.seeds + 1)]
        print(json.dumps({"loss": level, "nodes": args.nodes, "duration": args.duration,
                          "seeds": args.seeds, "runs_with_false_dead": sum(c > 0 for c in counts),
                          "false_dead_total": sum(counts)}), flush=True)
        dirty = dirty or any(counts)
        if not dirty:
            clean = level
    print(json.dumps({"highest_clean_loss": clean}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
