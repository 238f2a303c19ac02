"""The ``mesh`` command.

::

    mesh join --bind 127.0.0.1:7946 --name a [--seed HOST:PORT ...] [--secret-file F]
              [--advertise HOST:PORT] [--workers N] [--replicas R] [--log-level info]
              [--log-format text|json]
    mesh members --address 127.0.0.1:7946 [--json]
    mesh ring --address 127.0.0.1:7946 [--json]
    mesh up --nodes 3 [--base-port 7946] [--workers N] [--demo]
    mesh status --address 127.0.0.1:7946 [--json]
    mesh token --address HOST:PORT [--json]
    mesh sim ...

Exit codes: 0 success; 1 a runtime failure (nothing listening, port in use);
2 a usage or configuration error (bad address, insecure bind, bad secret file).

One module per command group. To add a command, write ``mesh/cli/NAME.py``
with a ``register(sub)`` that adds its subparser and sets
``set_defaults(run=FUNCTION)`` (``FUNCTION(args) -> exit code``), and add the
module to :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mesh.cli import join, ops, query, sim, up
from mesh.cli._common import config_overrides

__all__ = ["COMMAND_MODULES", "build_parser", "config_overrides", "main"]

COMMAND_MODULES = [join, query, up, ops, sim]
"""Every command group, in the order ``mesh --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesh", description="A leaderless peer-to-peer compute mesh."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mesh`` console script. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:
        return sim.run_sim(argv)
    args = build_parser().parse_args(argv)
    return int(args.run(args))
