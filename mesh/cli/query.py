"""``mesh members`` and ``mesh ring``: ask a running node."""

from __future__ import annotations

import argparse
import json
from typing import Any

from mesh import _loop
from mesh.addresses import DEFAULT_BIND, format_address
from mesh.cli._common import SECRETS_HELP, address, fail, print_table
from mesh.config import DEFAULT
from mesh.errors import ConfigError, WireError
from mesh.node import MEMBERS_PATH, RING_PATH
from mesh.realtime import RealRuntime
from mesh.runtime import Address, Unreachable
from mesh.secrets import ENV_VAR, load_secrets
from mesh.wire import Codec


def register(sub: argparse._SubParsersAction) -> None:
    for name, text, run in (("members", "list the members a node knows", cmd_members),
                            ("ring", "each member's share of the key space", cmd_ring)):
        query = sub.add_parser(name, help=text)
        query.add_argument("--address", type=address("--address"), default=DEFAULT_BIND,
                           metavar="HOST:PORT", help="a node of the mesh (default 127.0.0.1:7946)")
        query.add_argument("--json", action="store_true", help="print JSON")
        query.add_argument("--secret-file", metavar="PATH", action="append",
                           help=SECRETS_HELP)
        query.add_argument("--timeout", type=float, default=5.0, help=argparse.SUPPRESS)
        query.set_defaults(run=run)


async def _query(addr: Address, path: str, secret: list[bytes], timeout: float) -> Any:
    runtime = RealRuntime()
    codec = Codec(secret, DEFAULT.max_http_body, source=runtime)
    try:
        raw = await runtime.request(addr, path, codec.seal({}), timeout)
    finally:
        await runtime.close()
    return codec.open(raw)


def ask(args: argparse.Namespace, path: str) -> tuple[int, Any]:
    """``(0, reply)`` from the node at ``--address``, or ``(exit code, None)``
    after printing what went wrong."""
    where = format_address(args.address)
    try:
        secret = load_secrets(args.secret_file)
    except ConfigError as exc:
        return fail(2, str(exc)), None
    try:
        return 0, _loop.run(_query(args.address, path, secret, args.timeout))
    except Unreachable as exc:
        hint = ""
        if "HTTP 401" in str(exc):
            hint = (
                f"; the node did not accept our secret: pass the mesh's --secret-file "
                f"or set {ENV_VAR}"
            )
        return fail(1, f"no mesh node answered at {where}: {exc}{hint}"), None
    except WireError as exc:
        return fail(1, f"the node at {where} sent a reply we cannot read: {exc}"), None


def cmd_members(args: argparse.Namespace) -> int:
    code, reply = ask(args, MEMBERS_PATH)
    if code:
        return code
    rows = reply["members"]
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    table = [["NAME", "ADDRESS", "STATUS", "INCARNATION", "METADATA"]]
    for m in rows:
        meta = " ".join(f"{k}={m['meta'][k]}" for k in sorted(m.get("meta") or {}))
        table.append([m["name"], m["address"], m["status"], str(m["incarnation"]), meta])
    print_table(table)
    return 0


def cmd_ring(args: argparse.Namespace) -> int:
    code, reply = ask(args, RING_PATH)
    if code:
        return code
    shares: dict[str, float] = reply["shares"]
    if args.json:
        print(json.dumps(shares, sort_keys=True))
        return 0
    table = [["NAME", "SHARE"]]
    for name in sorted(shares):
        table.append([name, f"{100 * shares[name]:.1f}%"])
    print_table(table)
    return 0
