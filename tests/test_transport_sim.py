"""The shared transport suite against :class:`sim.runtime.SimRuntime`, on the
simulator's virtual-time loop, plus what only the simulated network promises
(faults reach the runtime the way the node would see them)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mesh.runtime import Address, Channel, Runtime, Unreachable
from sim import SimLoop, SimRuntime
from sim.network import Network
from sim.runtime import node_rng
from tests.transport_suite import Body, TransportSuite, eventually


def _run_sim(n: int, body: Body, seed: int = 1) -> Network:
    loop = SimLoop()
    net = Network(loop, seed)
    addrs = [(f"10.0.0.{i + 1}", 7946) for i in range(n)]
    rts = [SimRuntime(net, net.add_host(a, f"n{i}"), node_rng(seed, f"n{i}")) for i, a in
           enumerate(addrs)]

    async def main() -> None:
        async with asyncio.timeout(300):  # virtual seconds: fails rather than hangs
            await body(rts, addrs)

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return net


class TestSimTransport(TransportSuite):
    def run_with(self, n: int, body: Body) -> None:
        _run_sim(n, body)


async def _ok(path: str, data: bytes) -> tuple[int, bytes]:
    return 200, data


async def _close(path: str, channel: Channel) -> None:
    await channel.close()


def test_partitioned_request_times_out_and_heals() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        server = await rts[1].serve(addrs[1], _ok, _close)
        net = rts[0].net  # type: ignore[attr-defined]
        net.partition([[rts[0].host], [rts[1].host]])  # type: ignore[attr-defined]
        t0 = rts[0].now()
        with pytest.raises(Unreachable):
            await rts[0].request(addrs[1], "/", b"x", 1.5)
        assert rts[0].now() - t0 == pytest.approx(1.5)
        net.heal()
        assert await rts[0].request(addrs[1], "/", b"x", 1.5) == b"x"
        await server.close()

    _run_sim(2, body)


def test_one_way_partition_drops_only_one_direction() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        got: list[bytes] = []
        a = await rts[0].open_datagram(addrs[0], lambda d, s: got.append(b"a" + d))
        b = await rts[1].open_datagram(addrs[1], lambda d, s: got.append(b"b" + d))
        net = rts[0].net  # type: ignore[attr-defined]
        net.partition([[rts[0].host], [rts[1].host]], one_way=True)
        a.sendto(b"1", addrs[1])
        b.sendto(b"2", addrs[0])
        await rts[0].sleep(1.0)
        assert got == [b"a2"]
        a.close()
        b.close()

    _run_sim(2, body)


def test_paused_host_runs_no_timer_and_gets_held_datagrams_on_resume() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        got: list[tuple[bytes, float]] = []
        b = await rts[1].open_datagram(addrs[1], lambda d, s: got.append((d, rts[0].now())))
        a = await rts[0].open_datagram(addrs[0], lambda d, s: None)
        fired: list[float] = []
        host = rts[1].host  # type: ignore[attr-defined]
        host.pause()
        rts[1].call_later(1.0, lambda: fired.append(rts[0].now()))
        a.sendto(b"x", addrs[1])
        t0 = rts[0].now()
        await rts[0].sleep(5.0)
        assert got == [] and fired == []
        host.resume()
        await eventually(rts[0], lambda: len(got) == 1 and len(fired) == 1)
        assert got[0][1] - t0 == pytest.approx(5.0)
        assert fired[0] - t0 == pytest.approx(5.0)
        a.close()
        b.close()

    _run_sim(2, body)


def test_loss_drops_about_the_configured_fraction_of_datagrams() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        got: list[bytes] = []
        a = await rts[0].open_datagram(addrs[0], lambda d, s: None)
        b = await rts[1].open_datagram(addrs[1], lambda d, s: got.append(d))
        rts[0].net.loss = 0.2  # type: ignore[attr-defined]
        for i in range(2000):
            a.sendto(b"%d" % i, addrs[1])
        await rts[0].sleep(1.0)
        assert 1500 < len(got) < 1700
        a.close()
        b.close()

    _run_sim(2, body)


def test_same_seed_gives_the_same_trace_and_another_seed_another() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        a = await rts[0].open_datagram(addrs[0], lambda d, s: None)
        b = await rts[1].open_datagram(addrs[1], lambda d, s: a.sendto(d, s))
        for _ in range(100):
            a.sendto(b"%d" % rts[0].rng.randrange(1000), addrs[1])
            await rts[0].sleep(rts[0].rng.random() / 100)
        await rts[0].sleep(1.0)
        a.close()
        b.close()

    digests = [_run_sim(2, body, seed).trace.digest() for seed in (1, 1, 2)]
    assert digests[0] == digests[1] != digests[2]
