"""``mesh sim``: run the simulator from the command line.

``mesh/cli/sim.py`` registers the subcommand with :func:`add_parser` and calls
:func:`run`; ``python -m sim`` does the same on its own. Examples::

    mesh sim --nodes 1000 --seed 7 --duration 120 --loss 0.05 --crash 20 --partition 1 --json
    mesh sim --scenario sim/scenarios/partition_heal.toml --seed 3

Exit status: 0 if every invariant held (or was inconclusive), 1 if one
failed (the seed and a command that reproduces the run are printed), 2 for
bad arguments or a bad scenario file.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from mesh.errors import ConfigError

_ROLLING_FLAGS = {
    "crash": "crash this many nodes (they stay down) during the fault phase",
    "restart": "crash this many nodes and restart each a few seconds later",
    "partition": "cut off a random minority this many times, then heal",
    "one_way": "one-way partitions (only one direction cut), this many",
    "pause": "pause (freeze) this many nodes for a few seconds each",
    "slow": "make this many nodes slow (a CPU multiplier) for a while",
    "skew": "skew the clock rate of this many nodes for the whole run",
    "swizzle": "swizzle-clog this many nodes (FoundationDB)",
    "flap": "make this many nodes' networks flap down and up",
}


def add_parser(subparsers: Any) -> None:
    """Register the ``sim`` subcommand on an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "sim",
        help="run the deterministic fault-injection simulator",
        description="Run many real mesh nodes on virtual time over a simulated network, "
        "inject faults and check invariants. One seed always gives the same run.",
    )
    _add_arguments(p)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenario", metavar="FILE", help="a scenario TOML file "
                   "(flags given as well override its values)")
    p.add_argument("--workload", choices=("gossip", "tasks", "datasets", "actors", "data"),
                   help="what the nodes run: gossip (membership only, the default) or "
                   "tasks (simulated clients submit tasks, maps and graphs) or datasets "
                   "(simulated clients run word counts and sorts against their references) or data "
                   "(graphs of large values, chunked between nodes, holders killed mid-transfer)")
    p.add_argument("--nodes", type=int, help="cluster size (default 50)")
    p.add_argument("--warm", action="store_true", default=None,
                   help="start every node at time 0 already joined (through the real "
                   "push-pull merge), as a cluster formed long ago")
    p.add_argument("--seed", type=int, default=1, help="the run's seed (default 1)")
    p.add_argument("--duration", type=float, help="simulated seconds (default 60)")
    p.add_argument("--mode", choices=("liveness", "safety"),
                   help="liveness: faults, then a quiet phase that must converge; "
                   "safety: faults throughout, nothing false may be claimed")
    p.add_argument("--loss", type=float, help="datagram loss probability")
    p.add_argument("--dup", type=float, help="datagram duplication probability")
    p.add_argument("--reorder", type=float, help="probability of extra reordering delay")
    for name, text in _ROLLING_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, dest=name, metavar="N", help=text)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a mesh Config value, e.g. --set suspicion_mult=2")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_scenario(args: argparse.Namespace) -> Any:
    """The scenario the arguments describe. Raises ConfigError."""
    from dataclasses import replace

    from sim.scenario import Scenario, load

    sc = load(args.scenario) if args.scenario else Scenario(name="flags", source="flags")
    if args.workload is not None:
        sc.workload = args.workload
    if args.nodes is not None:
        sc.nodes = args.nodes
    if args.warm:
        sc.warm = True
    if args.duration is not None:
        sc.duration = args.duration
    if args.mode is not None:
        sc.mode = args.mode
    net = {}
    for flag, key in (("loss", "loss"), ("dup", "duplicate"), ("reorder", "reorder")):
        v = getattr(args, flag)
        if v is not None:
            net[key] = v
    if net:
        sc.network = replace(sc.network, **net)
    for name in _ROLLING_FLAGS:
        v = getattr(args, name)
        if v is not None:
            sc.rolling[name] = v
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
        sc.config[key.strip()] = _parse_value(value.strip())
    sc.validate()
    return sc


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def command_line(args: argparse.Namespace) -> str:
    """A ``mesh sim`` command that reproduces this run."""
    parts = ["mesh", "sim"]
    if args.scenario:
        parts += ["--scenario", args.scenario]
    for flag in ("workload", "nodes", "seed", "duration", "mode", "loss", "dup", "reorder"):
        v = getattr(args, flag)
        if v is not None:
            parts += [f"--{flag}", str(v)]
    for name in _ROLLING_FLAGS:
        v = getattr(args, name)
        if v is not None:
            parts += [f"--{name.replace('_', '-')}", str(v)]
    for item in args.set:
        parts += ["--set", item]
    if args.warm:
        parts.append("--warm")
    if args.json:
        parts.append("--json")
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Run the simulation the arguments describe; return the exit status."""
    from sim.report import ProgressBar, summary, to_dict
    from sim.runner import simulate

    try:
        sc = build_scenario(args)
    except (ConfigError, OSError) as exc:
        print(f"mesh sim: {exc}", file=sys.stderr)
        return 2
    progress = None if (args.json or args.no_progress) else ProgressBar()
    cmd = command_line(args)
    result = simulate(sc, args.seed, progress)
    if args.json:
        print(json.dumps(to_dict(result, cmd), indent=None, sort_keys=False))
    else:
        print(summary(result, cmd))
    if not result.ok:
        print(f"mesh sim: an invariant failed with seed {args.seed}; reproduce with: {cmd}",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m sim``."""
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))
