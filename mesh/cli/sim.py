"""``mesh sim``: the simulator's own command line (:mod:`sim.cli`)."""

from __future__ import annotations

import argparse

from mesh.cli._common import fail


def register(sub: argparse._SubParsersAction) -> None:
    # `mesh sim ARGS` is handed to sim.cli whole (see main); this entry only
    # lists it in `mesh --help`.
    sub.add_parser("sim", help="run the simulator (see `mesh sim --help`)", add_help=False)


def run_sim(argv: list[str]) -> int:
    try:
        from sim.cli import add_parser, run
    except ImportError as exc:  # an install without the sim package
        return fail(2, f"`mesh sim` needs the simulator package `sim`: {exc}")
    parser = argparse.ArgumentParser(prog="mesh")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return int(run(parser.parse_args(argv)) or 0)
