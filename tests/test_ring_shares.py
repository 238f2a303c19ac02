"""``/v1/ring``'s shares (mesh.exec._ring.ShareBuilds): built in slices,
one per loop turn, after a view change; a request waits for its view (or a
later one) without stalling the loop; a small view is answered at once."""

from __future__ import annotations

import asyncio

import pytest

from mesh.config import DEFAULT
from mesh.exec._ring import ShareBuilds
from mesh.placement import Member, Placement

CFG = DEFAULT


def expected(members: list[tuple[str, int]]) -> dict[str, float]:
    return Placement([Member(n, w) for n, w in members], vnodes=CFG.placement_vnodes,
                     probes=CFG.placement_probes, max_points=CFG.placement_max_points).shares()


def big(n: int, workers: int = 4) -> list[tuple[str, int]]:
    return [(f"m{i:05d}", workers) for i in range(n)]


def test_a_large_view_is_built_over_many_loop_turns_while_other_work_runs() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        builds = ShareBuilds(loop.call_later, lambda: CFG)
        turns = 0
        stop = False

        async def ticker() -> None:
            nonlocal turns
            while not stop:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        members = big(4000)
        assert builds.latest(members) == {}  # nothing built yet: the build starts
        shares = await builds.current(members)
        stop = True
        await task
        assert shares == pytest.approx(expected(members))
        assert list(shares) == sorted(shares)
        assert builds.slices > 10 and turns >= builds.slices - 1
        assert builds.latest(members) == shares  # the view is cached

    asyncio.run(main())


def test_a_request_during_a_build_gets_the_latest_view_asked_for() -> None:
    async def main() -> None:
        builds = ShareBuilds(asyncio.get_running_loop().call_later, lambda: CFG)
        old, new = big(3000), big(3001)
        first = asyncio.create_task(builds.current(old))
        await asyncio.sleep(0)
        second = asyncio.create_task(builds.current(new))
        got_first, got_second = await first, await second
        assert got_second == pytest.approx(expected(new))
        # the first request is answered with its view, or with the later one
        assert got_first in (pytest.approx(expected(old)), pytest.approx(expected(new)))
        assert builds.latest(new) == got_second

    asyncio.run(main())


def test_a_view_that_fits_one_slice_is_answered_at_once() -> None:
    builds = ShareBuilds(lambda delay, fn: pytest.fail("no slice needed"), lambda: CFG)
    members = [("a", 1), ("b", 2), ("c", 3)]
    assert builds.latest(members) == pytest.approx(expected(members))
    assert builds.latest([]) == {}


def test_the_placement_settings_are_part_of_the_view() -> None:
    cfg = CFG
    builds = ShareBuilds(lambda delay, fn: pytest.fail("no slice needed"), lambda: cfg)
    members = [("a", 1), ("b", 2)]
    before = builds.latest(members)
    cfg = CFG.with_(placement_vnodes=4, placement_probes=1)
    after = builds.latest(members)
    assert after != before
    assert after == pytest.approx(Placement([Member("a", 1), Member("b", 2)], vnodes=4,
                                            probes=1).shares())


def test_cancel_wakes_whoever_waits() -> None:
    async def main() -> None:
        builds = ShareBuilds(asyncio.get_running_loop().call_later, lambda: CFG)
        waiter = asyncio.create_task(builds.current(big(3000)))
        await asyncio.sleep(0)
        builds.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(main())
