"""The simulator's virtual-time event loop: asyncio code runs unchanged, time
jumps over idle periods, ordering is deterministic, and a wedged world is
reported instead of hanging."""

from __future__ import annotations

import asyncio
import time

import pytest

from sim import SimDeadlock, SimLivelock, SimLoop, run


def test_sleep_timeout_and_wait_for_run_on_virtual_time_without_waiting() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = [loop.time()]
        await asyncio.sleep(3600)
        seen.append(loop.time())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(10)
        seen.append(loop.time())
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 2.5)
        seen.append(loop.time())
        return seen

    wall = time.perf_counter()
    assert run(main()) == [0.0, 3600.0, 3605.0, 3607.5]
    assert time.perf_counter() - wall < 2.0


def test_timers_due_at_the_same_instant_fire_in_scheduling_order() -> None:
    loop = SimLoop()
    fired: list[int] = []
    for i in range(200):
        loop.call_at(5.0, fired.append, i)
    loop.call_at(1.0, fired.append, -1)
    loop.run_until(10.0)
    loop.close()
    assert fired == [-1, *range(200)]


def test_task_group_and_queues_work_and_the_clock_only_moves_when_idle() -> None:
    async def main() -> tuple[int, float]:
        q: asyncio.Queue[int] = asyncio.Queue()

        async def producer(i: int) -> None:
            await asyncio.sleep(i % 7)
            await q.put(i)

        async with asyncio.TaskGroup() as tg:
            for i in range(1000):
                tg.create_task(producer(i))
        total = 0
        while not q.empty():
            total += q.get_nowait()
        return total, asyncio.get_running_loop().time()

    assert run(main()) == (sum(range(1000)), 6.0)


def test_run_until_stops_with_the_clock_at_exactly_the_target() -> None:
    loop = SimLoop()
    fired: list[float] = []
    loop.call_at(2.5, lambda: fired.append(loop.time()))
    loop.call_at(7.0, lambda: fired.append(loop.time()))
    loop.run_until(5.0)
    assert fired == [2.5] and loop.time() == 5.0
    loop.run_until(7.0)
    assert fired == [2.5, 7.0]
    loop.close()


def test_waiting_for_something_that_never_happens_raises_deadlock() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(SimDeadlock):
        run(main())


def test_a_timer_that_reschedules_itself_for_now_raises_livelock() -> None:
    loop = SimLoop(stall_limit=1000)

    def spin() -> None:
        loop.call_at(loop.time(), spin)

    loop.call_at(1.0, spin)
    with pytest.raises(SimLivelock):
        loop.run_until(2.0)
    loop.close()


def test_cancelled_timers_do_not_fire_and_are_swept() -> None:
    loop = SimLoop()
    fired: list[int] = []
    handles = [loop.call_at(1.0 + i, fired.append, i) for i in range(10_000)]
    for h in handles[::2]:
        h.cancel()
    loop.run_until(20_000.0)
    loop.close()
    assert fired == list(range(1, 10_000, 2))
