"""The ``mesh`` command.

::

    mesh join --bind 127.0.0.1:7946 --name a [--seed HOST:PORT ...] [--secret-file F]
              [--advertise HOST:PORT] [--workers N] [--replicas R] [--demo] [--log-level info]
    mesh members --address 127.0.0.1:7946 [--json]
    mesh ring --address 127.0.0.1:7946 [--json]
    mesh up --nodes 3 [--base-port 7946] [--workers N]
    mesh sim ...

Exit codes: 0 success; 1 a runtime failure (nothing listening, port in use);
2 a usage or configuration error (bad address, insecure bind, bad secret file).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from mesh.config import DEFAULT, Config
from mesh.errors import ConfigError, WireError
from mesh.node import MEMBERS_PATH, RING_PATH, Node, Service
from mesh.ops import _cli as ops_cli
from mesh.ops._logs import add_log_flags, setup_logging, up_log_level
from mesh.runtime import Address, Unreachable
from mesh.secrets import (
    DEFAULT_BIND,
    ENV_VAR,
    check_bind,
    format_address,
    load_secret,
    parse_address,
)
from mesh.wire import Codec

log = logging.getLogger("mesh.cli")

LEAVE_TIMEOUT = 2.0
"""Seconds a leaving node gives the news to spread before it exits."""


# --------------------------------------------------------------- exec layer
def build_services(args: argparse.Namespace, config: Config) -> list[Service]:
    """The services a ``mesh join`` node runs on top of gossip. This is the
    one place where they are constructed (``args.workers``, ``args.demo`` and
    ``config.replicas`` are meant for the exec layer)."""
    from mesh.exec import ExecService, ProcessExecutor
    from mesh.ops import OpsService

    return [ExecService(ProcessExecutor(args.workers)), OpsService()]


# ------------------------------------------------------------------ parsing
def _address(what: str) -> Any:
    def parse(text: str) -> Address:
        try:
            return parse_address(text, what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = what  # argparse names the type in its messages
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 1-65535")
    return value


def config_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` settings of :class:`Config` (the hidden ``--set``
    flag); each value gets the type of the field's default. Raises
    :class:`ConfigError` naming a bad key or value."""
    fields = {f.name: f for f in dataclasses.fields(Config) if f.name != "extra"}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in fields:
            raise ConfigError(
                f"invalid --set {pair!r}: expected KEY=VALUE with KEY one of "
                + ", ".join(sorted(fields))
            )
        kind = type(getattr(DEFAULT, key))
        try:
            out[key] = kind(text)
        except ValueError:
            raise ConfigError(
                f"invalid --set {pair!r}: {text!r} is not a {kind.__name__}"
            ) from None
    return out


def _cores() -> int:
    return os.cpu_count() or 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mesh", description="A leaderless peer-to-peer compute mesh."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    secret_help = f"file holding the cluster secret (default: ${ENV_VAR})"

    join = sub.add_parser("join", help="run a node and join the mesh")
    join.add_argument(
        "--bind", type=_address("--bind address"), default=DEFAULT_BIND, metavar="HOST:PORT",
        help="address to listen on, UDP gossip and HTTP (default 127.0.0.1:7946); "
        "other nodes reach this node there unless --advertise says otherwise",
    )
    join.add_argument(
        "--advertise", type=_address("--advertise address"), default=None, metavar="HOST:PORT",
        help="address other nodes reach this node at (default: the --bind address); "
        "needed with a wildcard --bind such as 0.0.0.0, or behind a port mapping",
    )
    join.add_argument("--name", help="unique node name (default: HOSTNAME-PORT)")
    join.add_argument(
        "--seed", type=_address("--seed address"), action="append", default=[],
        metavar="HOST:PORT", help="a node to join through; repeat for several",
    )
    join.add_argument("--secret-file", metavar="PATH", help=secret_help)
    join.add_argument("--workers", type=_positive_int, default=_cores(),
                      help="worker processes (default: the number of cores, here %(default)s)")
    join.add_argument("--replicas", type=_positive_int, default=None,
                      help=f"copies of each stored result (default {DEFAULT.replicas})")
    join.add_argument("--demo", action="store_true", help="register the demo functions")
    add_log_flags(join)
    join.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help=argparse.SUPPRESS)  # Config overrides, for tests and experiments

    for name, text in (("members", "list the members a node knows"),
                       ("ring", "each member's share of the key space")):
        query = sub.add_parser(name, help=text)
        query.add_argument("--address", type=_address("--address"), default=DEFAULT_BIND,
                           metavar="HOST:PORT", help="a node of the mesh (default 127.0.0.1:7946)")
        query.add_argument("--json", action="store_true", help="print JSON")
        query.add_argument("--secret-file", metavar="PATH", help=secret_help)
        query.add_argument("--timeout", type=float, default=5.0, help=argparse.SUPPRESS)

    up = sub.add_parser("up", help="start a local mesh of several nodes")
    up.add_argument("--nodes", type=_positive_int, default=3)
    up.add_argument("--base-port", type=_port, default=DEFAULT_BIND[1],
                    help="the first node's port; the others follow (default 7946)")
    up.add_argument("--workers", type=_positive_int, default=None,
                    help="worker processes per node (default: the cores shared out "
                    "among the nodes, at least 1 each)")
    up.add_argument("--replicas", type=_positive_int, default=None)
    up.add_argument("--demo", action="store_true")
    up.add_argument("--secret-file", metavar="PATH", help=secret_help)
    up.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                    help="the nodes' log level (default: info; warning with --demo)")
    up.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=argparse.SUPPRESS)

    ops_cli.add_parsers(sub, _address("--address"), DEFAULT_BIND)
    sub.add_parser("sim", help="run the simulator (see `mesh sim --help`)", add_help=False)
    return parser


def _fail(code: int, message: str) -> int:
    print(f"mesh: error: {message}", file=sys.stderr)
    return code


# --------------------------------------------------------------------- join
def _config(args: argparse.Namespace) -> Config:
    config = DEFAULT.with_(**config_overrides(args.set))
    if args.replicas is not None:
        config = config.with_(replicas=args.replicas)
    return config


async def _join(args: argparse.Namespace, config: Config, secret: bytes | None) -> int:
    from mesh.realtime import RealRuntime

    # Signals first, so one that arrives while we start up is not lost. The
    # first leaves gracefully; a second one stops at once without leaving.
    signals = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    runtime = RealRuntime(max_body=config.max_http_body)
    meta = {"workers": args.workers}
    node = Node(
        runtime, config, args.name, args.bind, seeds=args.seed, secret=secret, meta=meta,
        services=build_services(args, config), advertise=args.advertise,
    )
    try:
        try:
            await node.start()
        except OSError as exc:
            return _fail(1, f"cannot listen on {format_address(args.bind)}: {exc.strerror or exc}")
        await signals.get()
        log.info("signal received; leaving the mesh (a second signal stops at once)")
        leaving = asyncio.ensure_future(node.leave(LEAVE_TIMEOUT))
        second = asyncio.ensure_future(signals.get())
        try:
            await asyncio.wait([leaving, second], return_when=asyncio.FIRST_COMPLETED)
        finally:
            second.cancel()
            if not leaving.done():
                log.warning("second signal: stopping without finishing the leave")
                leaving.cancel()
            await asyncio.gather(leaving, second, return_exceptions=True)
        if not leaving.cancelled() and leaving.exception() is not None:
            log.error("leaving failed", exc_info=leaving.exception())
            return 1
        return 0
    finally:
        await node.stop()
        await runtime.close()


def cmd_join(args: argparse.Namespace) -> int:
    from mesh.realtime import run

    try:
        secret = load_secret(args.secret_file)
        check_bind(args.bind[0], secret)
        if args.advertise is None:
            _check_not_wildcard(args.bind, "--bind")
        else:
            _check_not_wildcard(args.advertise, "--advertise")
        config = _config(args)
    except ConfigError as exc:
        return _fail(2, str(exc))
    if args.name is None:
        args.name = f"{socket.gethostname()}-{args.bind[1]}"
    try:
        if args.bind[0] not in _WILDCARDS:
            args.bind = _resolve(args.bind, "--bind")
        if args.advertise is not None:
            args.advertise = _resolve(args.advertise, "--advertise")
        args.seed = [_resolve(s, "seed") for s in args.seed]
    except ConfigError as exc:
        return _fail(2, str(exc))
    setup_logging(args.log_level, args.name, args.log_format)
    return run(_join(args, config, secret))


_WILDCARDS = ("0.0.0.0", "::", "")


def _check_not_wildcard(addr: Address, flag: str) -> None:
    if addr[0] not in _WILDCARDS:
        return
    if flag == "--bind":
        raise ConfigError(
            f"cannot bind to the wildcard address {format_address(addr)} without --advertise: "
            "other nodes need an address to reach this one. Bind to this host's address on "
            "the network the nodes share (e.g. --bind 10.0.0.5:7946), or keep the wildcard "
            "and say where peers reach it (e.g. --advertise 10.0.0.5:7946)"
        )
    raise ConfigError(
        f"--advertise {format_address(addr)} is a wildcard address, which no peer can reach: "
        "give this host's address on the network the nodes share, e.g. --advertise 10.0.0.5:7946"
    )


def _resolve(addr: Address, what: str) -> Address:
    """Addresses may be given as host names; gossip needs IP addresses."""
    host, port = addr
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve {what} {host}:{port}: {exc.strerror}") from None
    family_order = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
    ip = family_order[0][4][0]
    return (str(ip), port)


# ---------------------------------------------------------- members / ring
async def _query(address: Address, path: str, secret: bytes | None, timeout: float) -> Any:
    from mesh.realtime import RealRuntime

    codec = Codec(secret, DEFAULT.max_http_body)
    runtime = RealRuntime()
    try:
        raw = await runtime.request(address, path, codec.seal({}), timeout)
    finally:
        await runtime.close()
    return codec.open(raw)


def _ask(args: argparse.Namespace, path: str) -> tuple[int, Any]:
    from mesh.realtime import run

    where = format_address(args.address)
    try:
        secret = load_secret(args.secret_file)
    except ConfigError as exc:
        return _fail(2, str(exc)), None
    try:
        return 0, run(_query(args.address, path, secret, args.timeout))
    except Unreachable as exc:
        hint = ""
        if "HTTP 401" in str(exc):
            hint = (
                f"; the node did not accept our secret: pass the mesh's --secret-file "
                f"or set {ENV_VAR}"
            )
        return _fail(1, f"no mesh node answered at {where}: {exc}{hint}"), None
    except WireError as exc:
        return _fail(1, f"the node at {where} sent a reply we cannot read: {exc}"), None


def cmd_members(args: argparse.Namespace) -> int:
    code, reply = _ask(args, MEMBERS_PATH)
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
    _print_table(table)
    return 0


def cmd_ring(args: argparse.Namespace) -> int:
    code, reply = _ask(args, RING_PATH)
    if code:
        return code
    shares: dict[str, float] = reply["shares"]
    if args.json:
        print(json.dumps(shares, sort_keys=True))
        return 0
    table = [["NAME", "SHARE"]]
    for name in sorted(shares):
        table.append([name, f"{100 * shares[name]:.1f}%"])
    _print_table(table)
    return 0


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# ----------------------------------------------------------------------- up
def cmd_up(args: argparse.Namespace) -> int:
    from mesh import _up
    from mesh.realtime import run

    try:
        config_overrides(args.set)
        if args.secret_file is not None:
            load_secret(args.secret_file)
    except ConfigError as exc:
        return _fail(2, str(exc))
    up_log_level(args)
    if args.base_port + args.nodes - 1 > 65535:
        return _fail(2, f"--base-port {args.base_port} leaves no room for {args.nodes} nodes")
    if args.demo:
        from mesh.exec._demo import up_with_demo

        return run(up_with_demo(args))
    return run(_up.up(args))


# --------------------------------------------------------------------- main
def _sim(argv: list[str]) -> int:
    try:
        from sim.cli import add_parser, run
    except ImportError as exc:
        return _fail(2, f"`mesh sim` needs the simulator package `sim`: {exc}")
    parser = argparse.ArgumentParser(prog="mesh")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return int(run(parser.parse_args(argv)) or 0)


COMMANDS = {"join": cmd_join, "members": cmd_members, "ring": cmd_ring, "up": cmd_up,
            **ops_cli.COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mesh`` console script. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sim"]:
        return _sim(argv)
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
