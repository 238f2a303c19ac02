"""``mesh join``: run a node and join the mesh."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import socket

from mesh import _loop
from mesh.actors._service import ActorService
from mesh.addresses import DEFAULT_BIND, format_address
from mesh.cli._common import (
    SECRETS_HELP,
    add_set_flag,
    address,
    config_from,
    fail,
    positive_int,
    workers,
)
from mesh.config import DEFAULT, Config
from mesh.errors import ConfigError
from mesh.exec import ExecService, ProcessExecutor
from mesh.metrics import Metrics
from mesh.node import Node, Service
from mesh.ops import OpsService
from mesh.ops._logs import add_log_flags, setup_logging
from mesh.realtime import RealRuntime
from mesh.runtime import Address
from mesh.secrets import check_bind, load_secrets
from mesh.store import FileSpillDir, parse_size

log = logging.getLogger("mesh.cli")

_WILDCARDS = ("0.0.0.0", "::", "")


def register(sub: argparse._SubParsersAction) -> None:
    join = sub.add_parser("join", help="run a node and join the mesh")
    join.add_argument(
        "--bind", type=address("--bind address"), default=DEFAULT_BIND, metavar="HOST:PORT",
        help="address to listen on, UDP gossip and HTTP (default 127.0.0.1:7946); "
        "other nodes reach this node there unless --advertise says otherwise",
    )
    join.add_argument(
        "--advertise", type=address("--advertise address"), default=None, metavar="HOST:PORT",
        help="address other nodes reach this node at (default: the --bind address); "
        "needed with a wildcard --bind such as 0.0.0.0, or behind a port mapping",
    )
    join.add_argument("--name", help="unique node name (default: HOSTNAME-PORT)")
    join.add_argument(
        "--seed", type=address("--seed address"), action="append", default=[],
        metavar="HOST:PORT", help="a node to join through; repeat for several",
    )
    join.add_argument("--secret-file", metavar="PATH", action="append", help=SECRETS_HELP)
    join.add_argument("--workers", type=workers,
                      default=min(os.cpu_count() or 1, DEFAULT.max_workers),
                      help="worker processes (default: the number of cores, here %(default)s)")
    join.add_argument("--replicas", type=positive_int, default=None,
                      help=f"copies of each stored result (default {DEFAULT.replicas})")
    join.add_argument(
        "--memory-limit", metavar="SIZE", default=None,
        help="bytes of values kept in memory before the least recently used spill to disk: "
        f"2GiB, 500MB, 40%% (of RAM) (default: {round(DEFAULT.memory_share * 100)}%% of RAM)")
    join.add_argument(
        "--spill-dir", metavar="PATH", default=None,
        help="directory for spilled and received values (default: a temporary directory, "
        "removed on exit)")
    add_log_flags(join)
    add_set_flag(join)
    join.set_defaults(run=cmd_join)


def build_services(args: argparse.Namespace, config: Config,
                   spill_dir: str | None = None) -> list[Service]:
    """The services a ``mesh join`` node runs on top of gossip: the one place
    where they are constructed. ``spill_dir`` is the node's spill directory,
    where workers write large results and map large inputs."""
    return [ExecService(ProcessExecutor(args.workers, config=config, spill_dir=spill_dir)),
            ActorService(),
            OpsService()]


async def _join(args: argparse.Namespace, config: Config, secret: list[bytes]) -> int:
    # Signals first, so one that arrives while we start up is not lost. The
    # first leaves gracefully; a second one stops at once without leaving.
    signals = asyncio.Queue[int]()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    metrics = Metrics()  # the node's counters, shared with its connections'
    runtime = RealRuntime(max_body=config.max_http_body, config=config, metrics=metrics)
    meta = {"workers": args.workers}
    spill = (FileSpillDir.temporary(f"mesh-{args.name}-") if args.spill_dir is None
             else FileSpillDir(args.spill_dir))
    node = Node(
        runtime, config, args.name, args.bind, seeds=args.seed, secret=secret, meta=meta,
        services=build_services(args, config, spill.path), advertise=args.advertise,
        metrics=metrics, spill=spill,
    )
    node.driver.on_bulk_join = gc.freeze  # a large new table is long-lived (Config)
    try:
        try:
            await node.start()
        except OSError as exc:
            return fail(1, f"cannot listen on {format_address(args.bind)}: {exc.strerror or exc}")
        await signals.get()
        log.info("signal received; leaving the mesh (a second signal stops at once)")
        leaving = asyncio.ensure_future(node.leave(config.leave_timeout))
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
    try:
        secret = load_secrets(args.secret_file)
        check_bind(args.bind[0], secret)
        if args.advertise is None:
            check_not_wildcard(args.bind, "--bind")
        else:
            check_not_wildcard(args.advertise, "--advertise")
        config = config_from(args)
        if args.memory_limit is not None:
            config = config.with_(memory_limit=parse_size(args.memory_limit))
        if args.spill_dir is not None:
            check_spill_dir(args.spill_dir)
    except ConfigError as exc:
        return fail(2, str(exc))
    if args.name is None:
        args.name = f"{socket.gethostname()}-{args.bind[1]}"
    try:
        if args.bind[0] not in _WILDCARDS:
            args.bind = resolve(args.bind, "--bind")
        if args.advertise is not None:
            args.advertise = resolve(args.advertise, "--advertise")
        args.seed = [resolve(s, "seed") for s in args.seed]
    except ConfigError as exc:
        return fail(2, str(exc))
    setup_logging(args.log_level, args.name, args.log_format)
    _loop.settle_heap(config.gc_threshold)
    return _loop.run(_join(args, config, secret))


def check_spill_dir(path: str) -> None:
    """``--spill-dir`` must be a directory this process can create and write."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--spill-dir {path!r}: cannot create it: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"--spill-dir {path!r}: not writable by this process")


def check_not_wildcard(addr: Address, flag: str) -> None:
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


def resolve(addr: Address, what: str) -> Address:
    """Addresses may be given as host names; gossip needs IP addresses."""
    host, port = addr
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot resolve {what} {format_address(addr)}: {exc.strerror}") from None
    family_order = sorted(infos, key=lambda info: info[0] != socket.AF_INET)
    ip = family_order[0][4][0]
    return (str(ip), port)
