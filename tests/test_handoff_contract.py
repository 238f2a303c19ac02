"""One suite, both executors: the real process pool and the simulator's
executor take and give the same shapes of values (mesh.exec._handoff)."""

from __future__ import annotations

import random
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mesh.exec import ProcessExecutor
from mesh.protocol import payload as P
from mesh.store import FileSpillDir, MemorySpillDir, SpillDir, Value, dumps, loads
from sim.executor import SimExecutor
from tests.test_exec_pool import Collector, job
from tests.test_handoff import dep_job


class _Timer:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class _Clock:
    """What SimExecutor asks of its runtime: ``call_later``; timers fire on ``advance``."""

    def __init__(self) -> None:
        self.timers: list[_Timer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        self.timers.append(_Timer(callback))
        return self.timers[-1]

    def advance(self) -> None:
        while self.timers:
            timer = self.timers.pop(0)
            if timer.callback is not None:
                timer.callback()


class Harness:
    def __init__(self, executor: Any, spill: SpillDir, clock: _Clock | None) -> None:
        self.executor = executor
        self.spill = spill
        self.clock = clock
        self.out = Collector()

    async def run(self, jobs: list[list]) -> dict[str, tuple[int, Any]]:
        before = len(self.out.got)
        self.executor.run(jobs)
        if self.clock is not None:
            self.clock.advance()
        await self.out.wait(before + len(jobs))
        return self.out.got

    def stored(self, value: Value, name: str) -> Value:
        """``value`` as the node holds it once it is in spill file ``name``."""
        self.spill.write(name, value)
        held = self.spill.read(name)
        return Value(held.header, held.buffers, source=name)


@pytest.fixture(params=["process", "sim"])
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    if request.param == "process":
        spill: SpillDir = FileSpillDir(str(tmp_path))
        h = Harness(ProcessExecutor(1, spill_dir=str(tmp_path)), spill, None)
    else:
        spill = MemorySpillDir()
        clock = _Clock()
        h = Harness(SimExecutor(clock, random.Random(1), spill=spill),  # type: ignore[arg-type]
                    spill, clock)
    await h.executor.start(h.out)
    try:
        yield h
    finally:
        await h.executor.stop()


def make(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64)


def total(arr: np.ndarray) -> float:
    return float(arr.sum())


def a_lock(x: int) -> object:
    return threading.Lock()


N = 1 << 17  # 1 MiB of float64: over the 64 KiB threshold


async def test_a_large_result_is_an_ok_value_whose_source_holds_it(harness: Harness) -> None:
    got = await harness.run([job("big", make, N), job("small", make, 4)])
    kind, value = got["big"]
    assert kind == P.OK_VALUE and isinstance(value, Value) and value.source is not None
    assert harness.spill.names() == [value.source]
    assert np.array_equal(loads(value.header, value.buffers), make(N))
    assert harness.spill.read(value.source).same_bytes(value)
    kind, payload = got["small"]
    assert kind == P.OK_PICKLE and np.array_equal(P.loads_value(kind, payload), make(4))


async def test_value_inputs_with_and_without_a_file_reach_the_task(harness: Harness) -> None:
    stored = harness.stored(Value.of(*dumps(make(N))), "input-a")
    memory = Value.of(*dumps(make(N) * 2))
    got = await harness.run([dep_job("a", total, "ka", stored), dep_job("m", total, "km", memory)])
    assert P.loads_value(*got["a"]) == float(make(N).sum())
    assert P.loads_value(*got["m"]) == float(make(N).sum() * 2)
    assert harness.spill.names() == ["input-a"]  # inputs written for a task are gone again


async def test_an_unpicklable_result_fails_naming_its_type(harness: Harness) -> None:
    got = await harness.run([job("lock", a_lock, 1)])
    kind, payload = got["lock"]
    assert kind == P.FAILED and b"_thread.lock" in payload and b"'lock'" in payload
