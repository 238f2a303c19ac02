"""``mesh up``: a local mesh of several ``mesh join`` processes.

Node ``i`` (from 1) is called ``node<i>`` and listens on 127.0.0.1 at
``base_port + i - 1``. Every node is seeded with node1, and node1 with node2,
so any one of them can be restarted and find the others again.

The children run in their own sessions, so a Ctrl-C in the terminal reaches
only ``mesh up``, which then sends SIGTERM to every child (each leaves the mesh
gracefully), waits for all of them and kills any that outlive the grace time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from mesh.cli import LEAVE_TIMEOUT

GRACE = LEAVE_TIMEOUT + 3.0
"""Seconds a child gets to leave after SIGTERM before it is killed."""


def node_args(args: argparse.Namespace, i: int) -> list[str]:
    """The ``mesh join`` arguments of node ``i`` (0-based)."""
    port = args.base_port + i
    seeds = [args.base_port] if i else ([args.base_port + 1] if args.nodes > 1 else [])
    argv = ["join", "--bind", f"127.0.0.1:{port}", "--name", f"node{i + 1}"]
    for s in seeds:
        argv += ["--seed", f"127.0.0.1:{s}"]
    workers = args.workers or max(1, (os.cpu_count() or 1) // args.nodes)
    argv += ["--workers", str(workers), "--log-level", args.log_level]
    if args.replicas is not None:
        argv += ["--replicas", str(args.replicas)]
    if args.demo:
        argv.append("--demo")
    if args.secret_file is not None:
        argv += ["--secret-file", args.secret_file]
    for pair in args.set:
        argv += ["--set", pair]
    return argv


async def up(args: argparse.Namespace) -> int:
    """Start the nodes, print ``name address pid PID`` for each, wait for a signal or
    for every child to exit, then end them all. Returns the exit code."""
    stop = asyncio.Event()
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
