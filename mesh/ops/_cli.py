"""The ``mesh`` subcommands that live in :mod:`mesh.ops`: ``status`` and
``token``. ``mesh.cli`` registers them with :func:`add_parsers` and runs them
from :data:`COMMANDS`, so the command-line module holds only their names."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from mesh.secrets import ENV_VAR

__all__ = ["COMMANDS", "add_parsers"]


def _status(args: argparse.Namespace) -> int:
    from mesh.ops._status import cmd_status  # loaded when run: `mesh join` starts faster

    return cmd_status(args)


def _token(args: argparse.Namespace) -> int:
    from mesh.ops._token import cmd_token

    return cmd_token(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"status": _status, "token": _token}


def add_parsers(sub: argparse._SubParsersAction, address_type: object,
                default_address: object) -> None:
    """Register ``mesh status`` and ``mesh token`` on the ``mesh`` command."""
    status = sub.add_parser("status", help="the whole mesh in one table")
    token = sub.add_parser("token", help="print the dashboard URL with its read token")
    for p in (status, token):
        p.add_argument("--address", type=address_type, default=default_address,
                       metavar="HOST:PORT", help="a node of the mesh (default 127.0.0.1:7946)")
        p.add_argument("--secret-file", metavar="PATH",
                       help=f"file holding the cluster secret (default: ${ENV_VAR})")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--timeout", type=float, default=5.0, help=argparse.SUPPRESS)
    token.add_argument("--json", action="store_true", help="print JSON: url, token, metrics")
