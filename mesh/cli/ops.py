"""``mesh status`` and ``mesh token``: read a running mesh's figures, and the
read token of its dashboard and ``/metrics`` (the work is in :mod:`mesh.ops`)."""

from __future__ import annotations

import argparse

from mesh.addresses import DEFAULT_BIND
from mesh.cli._common import SECRETS_HELP, address


def _status(args: argparse.Namespace) -> int:
    from mesh.ops._status import cmd_status  # loaded when run: `mesh join` starts faster

    return cmd_status(args)


def _token(args: argparse.Namespace) -> int:
    from mesh.ops._token import cmd_token

    return cmd_token(args)


def register(sub: argparse._SubParsersAction) -> None:
    status = sub.add_parser("status", help="the whole mesh in one table")
    token = sub.add_parser("token", help="print the dashboard URL with its read token")
    for p, run in ((status, _status), (token, _token)):
        p.add_argument("--address", type=address("--address"), default=DEFAULT_BIND,
                       metavar="HOST:PORT", help="a node of the mesh (default 127.0.0.1:7946)")
        p.add_argument("--secret-file", metavar="PATH", action="append", help=SECRETS_HELP)
        p.set_defaults(run=run)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument("--timeout", type=float, default=5.0, help=argparse.SUPPRESS)
    token.add_argument("--json", action="store_true", help="print JSON: url, token, metrics")
