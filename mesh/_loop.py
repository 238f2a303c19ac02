"""Which asyncio event loop mesh runs on: the one choice, made here."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop (about twice the throughput of asyncio's on sockets and
    pipes), or asyncio's own where uvloop is not installed (Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh loop of :func:`new_event_loop`."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


def settle_heap(gc_threshold: int) -> None:
    """Set a node process's cyclic GC up, once its imports are done: what
    they made lives as long as the process, so it moves to the permanent
    generation (never rescanned by a full pass), and a pass runs every
    ``gc_threshold`` allocations (``Config.gc_threshold``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(gc_threshold, *gc.get_threshold()[1:])
