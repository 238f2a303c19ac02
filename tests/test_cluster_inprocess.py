"""Several :class:`mesh.node.Node` on the real runtime in one process: HTTP
routing, services, listeners, metadata and leaving, without process start-up
costs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mesh.config import DEFAULT
from mesh.gossip import MemberEvent
from mesh.node import Node
from mesh.placement import Member as PMember
from mesh.placement import Placement
from mesh.realtime import RealRuntime, run
from mesh.runtime import Channel, ChannelClosed, Unreachable
from mesh.wire import Codec
from mesh.wire._transport import SecureRuntime
from tests.procs import FAST, free_ports

CONFIG = DEFAULT.with_(**FAST)


class RecordingService:
    """Echoes requests and channel messages; records what it was told."""

    prefix = "/v1/echo/"

    def __init__(self) -> None:
        self.node: Node | None = None
        self.stopped: list[bool] = []
        self.events: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []

    async def start(self, node: Node) -> None:
        self.node = node

    async def stop(self, graceful: bool) -> None:
        self.stopped.append(graceful)

    async def handle_request(self, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.node is not None
        self.bodies.append(body)
        got = self.node.http_codec.open(body)
        return 200, self.node.http_codec.seal({"path": path, "got": got, "by": self.node.name})

    async def handle_channel(self, path: str, channel: Channel) -> None:
        while True:
            try:
                msg = await channel.recv()
            except ChannelClosed:
                return
            await channel.send(path.encode() + b"|" + msg)

    def on_member_event(self, event: MemberEvent) -> None:
        self.events.append((event.kind.value, event.member.name))


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


def _all_alive(nodes: list[Node]) -> bool:
    names = sorted(n.name for n in nodes)
    return all(
        sorted(m.name for m in n.membership.members() if m.status.word == "alive") == names
        for n in nodes
    )


Scenario = Callable[[list[Node], list[RecordingService], RealRuntime], Awaitable[None]]


def _with_nodes(n: int, scenario: Scenario) -> None:
    ports = free_ports(n)

    async def main() -> None:
        client = RealRuntime(seed=99)
        runtimes = [RealRuntime(seed=i) for i in range(n)]
        services = [RecordingService() for _ in range(n)]
        nodes = [
            Node(rt, CONFIG, f"n{i}", ("127.0.0.1", ports[i]),
                 seeds=[("127.0.0.1", ports[0])] if i else [], meta={"workers": i + 1},
                 services=[services[i]])
            for i, rt in enumerate(runtimes)
        ]
        try:
            for node in nodes:
                await node.start()
            await _until(lambda: _all_alive(nodes))
            await scenario(nodes, services, client)
        finally:
            for node in nodes:
                await node.stop()
            for rt in [*runtimes, client]:
                await rt.close()

    run(main())


def test_requests_and_channels_are_routed_to_the_service_by_prefix() -> None:
    async def scenario(nodes: list[Node], services: list[RecordingService],
                       client: RealRuntime) -> None:
        codec = Codec(None, CONFIG.max_http_body)
        target = nodes[1]
        reply = codec.open(await client.request(
            target.addr, "/v1/echo/hi", codec.seal({"x": 1}), 5.0))
        assert reply == {"path": "/v1/echo/hi", "got": {"x": 1}, "by": "n1"}
        members = codec.open(await client.request(target.addr, "/v1/members", codec.seal({}), 5.0))
        assert members["self"] == "n1"
        assert [m["name"] for m in members["members"]] == ["n0", "n1", "n2"]
        assert [m["meta"]["workers"] for m in members["members"]] == [1, 2, 3]
        with pytest.raises(Unreachable, match="HTTP 404"):
            await client.request(target.addr, "/v1/nothing", codec.seal({}), 5.0)
        assert target.metrics.get("http_not_found") == 1
        secure = SecureRuntime(client, codec, unauth_body=0)  # channels need a handshake
        ch = await secure.connect(target.addr, "/v1/echo/chan", 5.0)
        await ch.send(b"a")
        await ch.send(b"b")
        assert [await ch.recv(), await ch.recv()] == [b"/v1/echo/chan|a", b"/v1/echo/chan|b"]
        await ch.close()
        stray = await secure.connect(target.addr, "/v1/elsewhere", 5.0)
        with pytest.raises(ChannelClosed):
            await stray.recv()
        assert target.metrics.get("channel_not_found") == 1

    _with_nodes(3, scenario)


def test_ring_shares_weight_each_live_member_by_its_workers() -> None:
    async def scenario(nodes: list[Node], services: list[RecordingService],
                       client: RealRuntime) -> None:
        codec = Codec(None, CONFIG.max_http_body)
        reply = codec.open(await client.request(nodes[0].addr, "/v1/ring", codec.seal({}), 5.0))
        shares = reply["shares"]
        assert list(shares) == ["n0", "n1", "n2"]
        assert abs(sum(shares.values()) - 1.0) < 1e-9
        # weights 1, 2, 3 (workers meta): bigger members own more of the key space
        assert shares["n0"] < shares["n1"] < shares["n2"]
        assert shares == nodes[2].ring_shares()
        # The shares follow the node's placement settings (mesh join --set ...).
        node = nodes[0]
        expected = Placement([PMember("n0", 1), PMember("n1", 2), PMember("n2", 3)],
                             vnodes=4, probes=1).shares()
        node.config = node.config.with_(placement_vnodes=4, placement_probes=1)
        assert node.ring_shares() == expected != shares

    _with_nodes(3, scenario)


def test_unauthenticated_body_never_reaches_a_service_and_is_counted() -> None:
    async def scenario(nodes: list[Node], services: list[RecordingService],
                       client: RealRuntime) -> None:
        target = nodes[0]
        forged = Codec(b"not the secret", CONFIG.max_http_body).seal({"x": 1})
        with pytest.raises(Unreachable, match="HTTP 401"):
            await client.request(target.addr, "/v1/echo/run", forged, 5.0)
        with pytest.raises(Unreachable, match="HTTP 400"):
            await client.request(target.addr, "/v1/echo/run", b"\x80\x04pickle", 5.0)
        assert services[0].bodies == []
        assert target.metrics.get("wire_dropped_unknown_key") == 1
        assert target.metrics.get("wire_dropped_truncated") == 1

    _with_nodes(1, scenario)


def test_services_and_listeners_see_membership_events_and_set_meta_spreads() -> None:
    async def scenario(nodes: list[Node], services: list[RecordingService],
                       client: RealRuntime) -> None:
        heard: list[tuple[str, str]] = []
        nodes[0].add_listener(lambda ev: heard.append((ev.kind.value, ev.member.name)))
        assert ("join", "n1") in services[0].events and ("join", "n2") in services[0].events
        nodes[2].set_meta({"zone": "b"})
        assert nodes[2].membership.local.meta == {"workers": 3, "zone": "b",
                                                  "key_ids": nodes[2].keys.advertisement}

        def spread() -> bool:
            return all(n.membership.get("n2").meta.get("zone") == "b" for n in nodes)

        await _until(spread)
        assert ("update", "n2") in heard
        assert ("update", "n2") in services[1].events

    _with_nodes(3, scenario)


def test_leave_stops_services_gracefully_and_the_others_see_left() -> None:
    async def scenario(nodes: list[Node], services: list[RecordingService],
                       client: RealRuntime) -> None:
        await nodes[1].leave(timeout=1.0)
        assert services[1].stopped == [True]
        await nodes[1].stop()  # idempotent after leave
        assert services[1].stopped == [True]
        await _until(lambda: all(
            n.membership.get("n1").status.word == "left" for n in (nodes[0], nodes[2])))
        assert ("left", "n1") in services[0].events
        with pytest.raises(Unreachable):
            await client.request(nodes[1].addr, "/v1/members", b"", 2.0)
        await nodes[0].stop()
        assert services[0].stopped == [False]

    _with_nodes(3, scenario)


def test_start_on_a_port_in_use_raises_and_leaves_nothing_running() -> None:
    (port,) = free_ports(1)

    async def main() -> Any:
        rt1, rt2 = RealRuntime(seed=1), RealRuntime(seed=2)
        first = Node(rt1, CONFIG, "a", ("127.0.0.1", port))
        second = Node(rt2, CONFIG, "b", ("127.0.0.1", port))
        await first.start()
        try:
            with pytest.raises(OSError):
                await second.start()
            codec = Codec(None, CONFIG.max_http_body)
            reply = codec.open(await rt2.request(first.addr, "/v1/members", codec.seal({}), 5))
            assert reply["self"] == "a"
        finally:
            await first.stop()
            await second.stop()
            await rt1.close()
            await rt2.close()

    run(main())
