"""How long one push-pull table can stall a node's event loop.

A real :class:`mesh.node.Node` (real runtime, loopback, with the exec service
listening to member events, as ``mesh join`` runs it) serves a push-pull
whose table lists N members it has never heard of: the largest merge a peer
can send. The table is checked and applied in slices of
``Config.push_pull_merge_slice`` rows, one per loop turn
(``mesh.gossip._merge``); the same table merged in one turn (a slice of N
rows) is measured in the same run.

    python -m bench.merge_stall [--members 4000,10000] [--rounds 3]

Prints one JSON line: per member count, ``turns`` (loop turns that merged),
``max_turn_cpu_ms`` (CPU time of the longest of them, less cyclic GC, each
turn being the push-pull handler or one gossip timer callback with the
member events it raises), ``max_gc_in_turn_ms``, ``merge_total_ms`` (wall
clock from the request until the last row applied), ``unsliced_ms`` (CPU of
the same merge in one turn), ``reply_seal_ms`` (CPU to pack and seal a table
of N rows, what the answering node does for its own reply, in all) and
``reply_max_turn_ms`` (the longest loop turn of that: the table is packed in
slices of ``Config.table_pack_slice`` rows), each the worst of the rounds (the
total: the best). A view change follows each merge; its ring is
built in slices by the exec layer (``python -m bench.ring_stall``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import socket
import time
from typing import Any

from bench.ring_stall import SliceClock
from mesh._loop import settle_heap
from mesh.config import DEFAULT, Config
from mesh.exec import ExecService
from mesh.node import Node
from mesh.realtime import RealRuntime, run

SECRET = b"merge-stall-bench-secret-0123456"


class IdleExecutor:
    """An executor that is never given work (only the merge is measured)."""

    workers = 4
    takes_values = False

    async def start(self, on_outcomes: Any) -> None:
        return None

    def capacity(self, fn: bytes | None = None) -> int:
        return 0

    def run(self, jobs: list[Any]) -> None:
        raise AssertionError("the merge bench runs no jobs")

    run_solo = run

    async def stop(self) -> None:
        return None


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _table(n: int, meta: dict[str, Any]) -> list[list[Any]]:
    """N members the node never heard of, as msgpack decodes a table."""
    return [[f"peer{i:05d}", "127.0.0.2", 1024 + i, 1_700_000_000_000 + i, 0, meta]
            for i in range(n)]


async def _merge(n: int, slice_rows: int) -> dict[str, Any]:
    cfg: Config = DEFAULT.with_(max_members=max(DEFAULT.max_members, n + 1),
                                push_pull_merge_slice=slice_rows)
    rt = RealRuntime()
    node = Node(rt, cfg, "bench", ("127.0.0.1", _port()), secret=SECRET,
                services=[ExecService(IdleExecutor())])  # type: ignore[arg-type]
    await node.start()
    try:
        meta = {**node.membership.local.meta, "workers": 4, "zone": "a"}
        table = _table(n, meta)
        clock = SliceClock()
        driver = node.driver
        on_timer = driver._on_timer
        turns = 1  # the push-pull handler's, then one per timer callback that merged

        def timed() -> None:
            nonlocal turns
            turns += bool(node.membership.merges)
            clock.call(on_timer)

        driver._on_timer = timed  # type: ignore[method-assign]
        driver.on_bulk_join = gc.freeze  # as mesh join sets it
        with clock:
            t0 = time.perf_counter()
            status, _ = await _stepped(clock, driver.handle_push_pull({"state": table}))
            assert status == 200
            while node.membership.merges:
                await asyncio.sleep(0)
            total = time.perf_counter() - t0
        assert len(node.membership.members()) == n + 1, "the table was not merged"
        full_gc = time.thread_time()
        gc.collect()  # the worst a cyclic-GC pass can cost this node's heap now
        full_gc = time.thread_time() - full_gc
        reply = SliceClock()
        seal = time.thread_time()
        with reply:
            await _stepped(reply, driver.seal_table({}, "state", node.membership.local_state()))
        seal = time.thread_time() - seal
        return {"turns": turns, "max_turn_cpu_ms": clock.worst * 1e3,
                "max_gc_in_turn_ms": max(clock.worst_gc, reply.worst_gc) * 1e3,
                "merge_total_ms": total * 1e3, "reply_seal_ms": seal * 1e3,
                "reply_max_turn_ms": reply.worst * 1e3, "full_gc_ms": full_gc * 1e3}
    finally:
        await node.stop()
        await rt.close()


async def _stepped(clock: SliceClock, coro: Any) -> Any:
    """Run ``coro``, timing each of its loop turns (it yields only to the loop)."""
    while True:
        try:
            clock.call(lambda: coro.send(None))
        except StopIteration as stop:
            return stop.value
        await asyncio.sleep(0)


def measure(n: int, rounds: int) -> dict[str, Any]:
    settle_heap(DEFAULT.gc_threshold)  # the heap of a node that ``mesh join`` started
    got: dict[str, Any] = {}
    for _ in range(rounds):
        r = run(_merge(n, DEFAULT.push_pull_merge_slice))
        for k in ("turns", "max_turn_cpu_ms", "max_gc_in_turn_ms", "reply_seal_ms",
                  "reply_max_turn_ms", "full_gc_ms"):
            got[k] = max(got.get(k, 0), r[k])
        got["merge_total_ms"] = min(got.get("merge_total_ms", 1e9), r["merge_total_ms"])
        whole = run(_merge(n, n))
        got["unsliced_ms"] = max(got.get("unsliced_ms", 0), whole["max_turn_cpu_ms"])
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in got.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default="4000,10000", help="comma-separated member counts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"bench": "merge_stall", "slice": DEFAULT.push_pull_merge_slice}
    for n in (int(x) for x in args.members.split(",")):
        out[str(n)] = measure(n, args.rounds)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
