"""How long one view change can stall a node's event loop.

A burst of member events (peers announcing thousands of members with the
most workers the wire allows) makes the exec layer build a new ring. It is
built in slices, one per loop turn (``mesh.exec._ring.ViewBuilds``); this
measures, on a real asyncio loop, the largest single slice (CPU time, and
the wall-clock gap a ticker task sees between its turns) against building the
same view at once (``Placement(...)`` plus its lookup table) in the same run.

    python -m bench.ring_stall [--members 1000,10000] [--workers 256] [--rounds 3]

Prints one JSON line: per member count, ``points``, ``slices``,
``max_slice_cpu_ms`` (less cyclic GC), ``max_gc_in_slice_ms`` (the longest GC
pass that landed in a slice), ``max_loop_gap_ms`` (wall clock, so it includes
other processes' turns on a shared machine), ``build_total_ms`` (sliced) and
``unsliced_ms`` (CPU time of the whole build in one turn), each the worst of
the rounds (the build total: the best). ``shares_max_slice_cpu_ms`` and
``shares_unsliced_ms`` are the same for ``/v1/ring``'s shares of the view
(``ShareBuilds``: the ring, then each member's share, in slices).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from mesh._loop import settle_heap
from mesh.config import DEFAULT
from mesh.exec._ring import ShareBuilds, ViewBuilds
from mesh.placement import Member, Placement


class SliceClock:
    """CPU time of calls, less any cyclic-GC pass inside them (a GC pass scans
    the whole heap, whoever allocated last; it is reported apart). Use as a
    context manager around the measured calls."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.worst_gc = 0.0
        self._gc = 0.0
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.thread_time()
        else:
            self._gc += time.thread_time() - self._gc_start

    def __enter__(self) -> SliceClock:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, timed."""
        before, t0 = self._gc, time.thread_time()
        try:
            return fn()
        finally:
            spent_gc = self._gc - before
            self.worst = max(self.worst, time.thread_time() - t0 - spent_gc)
            self.worst_gc = max(self.worst_gc, spent_gc)


async def _sliced(members: list[tuple[str, int]]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    clock = SliceClock()
    views = ViewBuilds.configured(loop.call_later, lambda ms, ring: done.set(), DEFAULT)
    original = views._slice
    views._slice = lambda: clock.call(original)  # type: ignore[method-assign]
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    with clock:
        views.want(members)
        await done.wait()
    total = time.perf_counter() - t0
    await tick
    return {"slices": views.slices, "max_slice_cpu_ms": clock.worst * 1e3,
            "max_gc_in_slice_ms": clock.worst_gc * 1e3,
            "max_loop_gap_ms": max(gaps) * 1e3, "build_total_ms": total * 1e3}


async def _shares_sliced(members: list[tuple[str, int]]) -> float:
    """The largest slice of ``/v1/ring``'s shares build (ShareBuilds), in ms of CPU."""
    loop = asyncio.get_running_loop()
    clock = SliceClock()

    def call_later(delay: float, fn: Callable[[], None]) -> Any:
        return loop.call_later(delay, lambda: clock.call(fn))

    with clock:
        await ShareBuilds(call_later, lambda: DEFAULT).current(members)
    return clock.worst * 1e3


def _shares_unsliced(members: list[tuple[str, int]]) -> float:
    t0 = time.thread_time()
    Placement([Member(n, w) for n, w in members], vnodes=DEFAULT.placement_vnodes,
              probes=DEFAULT.placement_probes, max_points=DEFAULT.placement_max_points).shares()
    return (time.thread_time() - t0) * 1e3


def _unsliced(members: list[tuple[str, int]]) -> tuple[float, int]:
    t0 = time.thread_time()
    view = Placement([Member(n, w) for n, w in members], vnodes=DEFAULT.placement_vnodes,
                     probes=DEFAULT.placement_probes, max_points=DEFAULT.placement_max_points)
    view.preference_list("k", DEFAULT.replicas)
    return (time.thread_time() - t0) * 1e3, view.points


def run(counts: list[int], workers: int, rounds: int) -> dict[str, Any]:
    settle_heap(DEFAULT.gc_threshold)  # the heap of a node that ``mesh join`` started
    out: dict[str, Any] = {"bench": "ring_stall", "workers": workers,
                           "slice": DEFAULT.placement_build_slice,
                           "max_points": DEFAULT.placement_max_points}
    for n in counts:
        members = [(f"fake{i}", workers) for i in range(n)]
        got: dict[str, Any] = {}
        for _ in range(rounds):
            r = asyncio.run(_sliced(members))
            for k in ("slices", "max_slice_cpu_ms", "max_gc_in_slice_ms", "max_loop_gap_ms"):
                got[k] = max(got.get(k, 0), r[k])
            got["build_total_ms"] = min(got.get("build_total_ms", 1e9), r["build_total_ms"])
            unsliced, points = _unsliced(members)
            got["unsliced_ms"] = max(got.get("unsliced_ms", 0), unsliced)
            got["points"] = points
            got["shares_max_slice_cpu_ms"] = max(got.get("shares_max_slice_cpu_ms", 0),
                                                 asyncio.run(_shares_sliced(members)))
            got["shares_unsliced_ms"] = max(got.get("shares_unsliced_ms", 0),
                                            _shares_unsliced(members))
        out[str(n)] = {k: round(v, 2) if isinstance(v, float) else v for k, v in got.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default="1000,10000", help="comma-separated member counts")
    parser.add_argument("--workers", type=int, default=DEFAULT.max_workers)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.members.split(",")]
    print(json.dumps(run(counts, args.workers, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
