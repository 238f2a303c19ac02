"""The real executor: worker subprocesses behind the executor seam."""

from __future__ import annotations

import asyncio
import os

from mesh.exec import ProcessExecutor
from mesh.protocol import payload as P


def inc(x: int) -> int:
    return x + 1


def shout(x: int) -> int:
    print("user output must not corrupt the protocol pipe", x)
    return x


def fail(x: int) -> int:
    raise KeyError(f"missing {x}")


def die(x: int) -> int:
    os._exit(3)


def job(tid: str, fn: object, *args: object) -> list:
    akind, payload, _ = P.dumps_args(args, {})
    return [tid, P.dumps_function(fn), akind, payload, None]


class Collector:
    def __init__(self) -> None:
        self.got: dict[str, tuple[int, bytes]] = {}
        self.changed = asyncio.Event()

    def __call__(self, outs: list) -> None:
        for tid, kind, payload in outs:
            assert tid not in self.got, f"{tid} reported twice"
            self.got[tid] = (kind, payload)
        self.changed.set()

    async def wait(self, n: int) -> None:
        async with asyncio.timeout(60):  # a deadline, not a wait: a loaded machine is slow
            while len(self.got) < n:
                self.changed.clear()
                await self.changed.wait()


async def test_jobs_run_in_worker_processes_in_batches() -> None:
    ex = ProcessExecutor(2)
    out = Collector()
    await ex.start(out)
    try:
        assert ex.capacity() > 0
        ex.run([job(str(i), inc, i) for i in range(2000)] + [job("p", shout, 7)])
        await out.wait(2001)
        assert all(P.loads_value(*out.got[str(i)]) == i + 1 for i in range(2000))
        assert P.loads_value(*out.got["p"]) == 7
    finally:
        await ex.stop()


async def test_a_raising_job_reports_its_exception_and_traceback() -> None:
    ex = ProcessExecutor(1)
    out = Collector()
    await ex.start(out)
    try:
        ex.run([job("e", fail, 5)])
        await out.wait(1)
        kind, payload = out.got["e"]
        assert kind == P.ERROR
        exc = P.load_error(payload)
        assert isinstance(exc, KeyError) and "missing 5" in str(exc)
        assert "in fail" in str(exc.__cause__)
    finally:
        await ex.stop()


async def test_a_dead_worker_is_replaced_and_its_jobs_reported_crashed() -> None:
    ex = ProcessExecutor(1)
    out = Collector()
    await ex.start(out)
    try:
        ex.run_solo(job("d", die, 0))
        await out.wait(1)
        assert out.got["d"][0] == P.CRASHED
        assert ex.restarts == 1
        ex.run([job("after", inc, 1)])
        await out.wait(2)
        assert P.loads_value(*out.got["after"]) == 2
    finally:
        await ex.stop()


async def test_an_outcome_handler_error_fails_the_tasks_and_the_pool_keeps_running() -> None:
    out = Collector()
    calls = []

    def handler(outs: list) -> None:
        calls.append(outs)
        if any(tid == "boom" for tid, _, _ in outs) and len(calls) == 1:
            raise TypeError("'<' not supported between instances of 'int' and 'str'")
        out(outs)

    ex = ProcessExecutor(1)
    await ex.start(handler)
    try:
        ex.run([job("boom", fail, 1)])
        await out.wait(1)
        kind, payload = out.got["boom"]
        assert kind == P.FAILED and b"TypeError" in payload and b"'boom'" in payload
        ex.run([job("after", inc, 1)])  # the same worker's reader still reads
        await out.wait(2)
        assert P.loads_value(*out.got["after"]) == 2
    finally:
        await ex.stop()


def test_the_pool_takes_its_batch_sizes_and_limits_from_config() -> None:
    from mesh.config import Config

    ex = ProcessExecutor(1, config=Config(pool_max_batch=3, pool_untimed_batch=1,
                                          pool_batch_seconds=0.2, pool_timed_functions=2,
                                          pool_depth=5, pool_max_early_deaths=7))
    assert ex._batch_size(b"new") == 1  # not timed yet
    ex._time(b"fast", 1e-6)
    assert ex._batch_size(b"fast") == 3  # capped by pool_max_batch
    ex._time(b"slow", 0.1)
    assert ex._batch_size(b"slow") == 2  # pool_batch_seconds / per-task time
    ex._time(b"third", 0.1)
    assert list(ex._fn_seconds) == [b"slow", b"third"]  # pool_timed_functions
    assert ex._depth == 5
