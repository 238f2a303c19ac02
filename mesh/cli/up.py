"""``mesh up``: a local mesh of several ``mesh join`` processes.

Node ``i`` (from 1) is called ``node<i>`` and listens on 127.0.0.1 at
``base_port + i - 1``. Every node is seeded with node1, and node1 with node2,
so any one of them can be restarted and find the others again.

The children run in their own sessions, so a Ctrl-C in the terminal reaches
only ``mesh up``, which then sends SIGTERM to every child (each leaves the mesh
gracefully), waits for all of them and kills any that outlive the grace time.
With ``--demo`` a job runs on the mesh once it is up (:mod:`mesh.cli.demo`),
and the mesh stops when it is done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from mesh import _loop
from mesh.cli._common import (
    SECRET_HELP,
    add_set_flag,
    config_overrides,
    fail,
    port,
    positive_int,
)
from mesh.config import DEFAULT
from mesh.errors import ConfigError
from mesh.ops._logs import LEVELS, up_log_level
from mesh.secrets import load_secret
from mesh.store import default_memory_limit, parse_size

GRACE = DEFAULT.leave_timeout + 3.0
"""Seconds a child gets to leave after SIGTERM before it is killed."""


def register(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start a local mesh of several nodes")
    up.add_argument("--nodes", type=positive_int, default=3)
    up.add_argument("--base-port", type=port, default=7946,
                    help="the first node's port; the others follow (default 7946)")
    up.add_argument("--workers", type=positive_int, default=None,
                    help="worker processes per node (default: the cores shared out "
                    "among the nodes, at least 1 each)")
    up.add_argument("--replicas", type=positive_int, default=None)
    up.add_argument("--memory-limit", metavar="SIZE", default=None,
                    help="each node's --memory-limit (default: half the RAM split among "
                    "the nodes)")
    up.add_argument("--spill-dir", metavar="PATH", default=None,
                    help="each node spills under PATH/nodeN (default: a temporary directory "
                    "per node, removed on exit)")
    up.add_argument("--demo", action="store_true",
                    help="run a demo job on the mesh, print what each node did, then stop")
    up.add_argument("--secret-file", metavar="PATH", help=SECRET_HELP)
    up.add_argument("--log-level", default=None, choices=LEVELS,
                    help="the nodes' log level (default: info; warning with --demo)")
    add_set_flag(up)
    up.set_defaults(run=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    try:
        config_overrides(args.set)
        secret = load_secret(args.secret_file) if args.secret_file is not None else None
        if args.memory_limit is not None:
            parse_size(args.memory_limit)
    except ConfigError as exc:
        return fail(2, str(exc))
    up_log_level(args)
    if args.base_port + args.nodes - 1 > 65535:
        return fail(2, f"--base-port {args.base_port} leaves no room for {args.nodes} nodes")
    if args.demo:
        return _loop.run(up_with_demo(args, secret))
    return _loop.run(up(args))


def node_args(args: argparse.Namespace, i: int) -> list[str]:
    """The ``mesh join`` arguments of node ``i`` (0-based)."""
    first = args.base_port + i
    seeds = [args.base_port] if i else ([args.base_port + 1] if args.nodes > 1 else [])
    argv = ["join", "--bind", f"127.0.0.1:{first}", "--name", f"node{i + 1}"]
    for s in seeds:
        argv += ["--seed", f"127.0.0.1:{s}"]
    workers = args.workers or max(1, (os.cpu_count() or 1) // args.nodes)
    argv += ["--workers", str(workers), "--log-level", args.log_level]
    if args.replicas is not None:
        argv += ["--replicas", str(args.replicas)]
    memory = args.memory_limit or str(default_memory_limit(args.nodes, DEFAULT.memory_share))
    argv += ["--memory-limit", memory]
    if args.spill_dir is not None:
        argv += ["--spill-dir", os.path.join(args.spill_dir, f"node{i + 1}")]
    if args.secret_file is not None:
        argv += ["--secret-file", args.secret_file]
    for pair in args.set:
        argv += ["--set", pair]
    return argv


async def up(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    """Start the nodes, print ``name address pid PID`` for each, wait for a
    signal, for ``stop``, or for every child to exit, then end them all.
    Returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    children: list[tuple[str, asyncio.subprocess.Process]] = []
    try:
        for i in range(args.nodes):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mesh.cli", *node_args(args, i),
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
            )
            name = f"node{i + 1}"
            children.append((name, proc))
            print(f"{name} 127.0.0.1:{args.base_port + i} pid {proc.pid}", flush=True)
        print(f"mesh up: {args.nodes} nodes running; Ctrl-C stops them all", flush=True)
        exited = asyncio.ensure_future(_all_exited(children))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([exited, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (exited, stopping):
                task.cancel()
            await asyncio.gather(exited, stopping, return_exceptions=True)
        if not stop.is_set():
            print("mesh up: every node has exited", file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        await _end_all(children)


async def up_with_demo(args: argparse.Namespace, secret: bytes | None) -> int:
    """``mesh up --demo``: the nodes start, the demo runs, then everything
    stops (exit code 0 when the result is right)."""
    from mesh.cli.demo import DEMO_TIMEOUT, run_demo  # the client, only when asked for

    stop = asyncio.Event()
    up_task = asyncio.ensure_future(up(args, stop))
    addresses = [f"127.0.0.1:{args.base_port + i}" for i in range(args.nodes)]
    job = asyncio.ensure_future(
        asyncio.wait_for(run_demo(addresses, secret), DEMO_TIMEOUT))
    await asyncio.wait({job, up_task}, return_when=asyncio.FIRST_COMPLETED)
    if not job.done():  # Ctrl-C (or every node exited) before the demo finished
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
        return await up_task or 1
    try:
        code = job.result()
    except Exception as exc:  # report any failure of the demo and still stop the nodes
        print(f"mesh up: the demo failed: {type(exc).__name__}: {exc}", file=sys.stderr,
              flush=True)
        code = 1
    stop.set()
    rc = await up_task
    return code or rc


async def _all_exited(children: list[tuple[str, asyncio.subprocess.Process]]) -> None:
    async def watch(name: str, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        print(f"mesh up: {name} exited with code {code}", file=sys.stderr, flush=True)

    await asyncio.gather(*(watch(n, p) for n, p in children))


async def _end_all(children: list[tuple[str, asyncio.subprocess.Process]]) -> None:
    running = [p for _, p in children if p.returncode is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):  # exited just now
            proc.send_signal(signal.SIGTERM)
    if not running:
        return
    waits = [asyncio.ensure_future(p.wait()) for p in running]
    _, pending = await asyncio.wait(waits, timeout=GRACE)
    for proc in running:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    if pending:
        await asyncio.gather(*pending)
