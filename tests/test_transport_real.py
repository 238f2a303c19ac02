"""The shared transport suite against the real runtime on 127.0.0.1, plus the
guarantees only the real runtime documents (body bounds, seeds, handler
failures)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aiohttp
import pytest

from mesh.realtime import RealRuntime, run
from mesh.runtime import Address, Channel, ChannelClosed, Runtime, Unreachable
from tests.procs import free_ports
from tests.transport_suite import Body, TransportSuite, eventually


def _run_real(n: int, body: Body, **runtime_kwargs: object) -> None:
    addrs = [("127.0.0.1", port) for port in free_ports(n)]

    async def main() -> None:
        rts = [RealRuntime(seed=i, **runtime_kwargs) for i in range(n)]  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(30):
                await body(rts, addrs)
        finally:
            for rt in rts:
                await rt.close()

    run(main())


class TestRealTransport(TransportSuite):
    def run_with(self, n: int, body: Body) -> None:
        _run_real(n, body)


async def _ok(path: str, data: bytes) -> tuple[int, bytes]:
    return 200, data


async def _close(path: str, channel: Channel) -> None:
    await channel.close()


def test_same_seed_gives_the_same_random_stream() -> None:
    a, b = RealRuntime(seed=42), RealRuntime(seed=42)
    assert [a.rng.random() for _ in range(10)] == [b.rng.random() for _ in range(10)]
    drawn = RealRuntime()
    assert RealRuntime(seed=drawn.seed).rng.random() == drawn.rng.random()


def test_oversized_request_body_reaches_the_handler_cut_at_max_plus_one() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        sizes: list[int] = []

        async def record(path: str, data: bytes) -> tuple[int, bytes]:
            sizes.append(len(data))
            return (400 if len(data) > 1000 else 200), b""

        server = await rts[1].serve(addrs[1], record, _close)
        try:
            await rts[0].request(addrs[1], "/ok", b"x" * 1000, 5.0)
            with pytest.raises(Unreachable):
                await rts[0].request(addrs[1], "/big", b"x" * 50_000, 5.0)
            assert sizes == [1000, 1001]
            # the server is still fine afterwards
            await rts[0].request(addrs[1], "/ok", b"y", 5.0)
        finally:
            await server.close()

    _run_real(2, body, max_body=1000)


def test_reply_larger_than_max_body_raises_unreachable() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        async def big(path: str, data: bytes) -> tuple[int, bytes]:
            return 200, b"z" * 2000

        server = await rts[1].serve(addrs[1], big, _close)
        try:
            with pytest.raises(Unreachable, match="more than 1000 bytes"):
                await rts[0].request(addrs[1], "/", b"", 5.0)
        finally:
            await server.close()

    _run_real(2, body, max_body=1000)


def test_request_handler_that_raises_gives_unreachable_and_the_server_survives() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        async def flaky(path: str, data: bytes) -> tuple[int, bytes]:
            if path == "/boom":
                raise RuntimeError("handler bug")
            return 200, b"fine"

        server = await rts[1].serve(addrs[1], flaky, _close)
        try:
            with pytest.raises(Unreachable, match="HTTP 500"):
                await rts[0].request(addrs[1], "/boom", b"", 5.0)
            assert await rts[0].request(addrs[1], "/ok", b"", 5.0) == b"fine"
        finally:
            await server.close()

    _run_real(2, body)


def test_datagram_handler_that_raises_does_not_close_the_endpoint() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        got: list[bytes] = []

        def handler(data: bytes, src: Address) -> None:
            if data == b"bad":
                raise ValueError("handler bug")
            got.append(data)

        ep = await rts[0].open_datagram(addrs[0], handler)
        try:
            ep.sendto(b"bad", addrs[0])
            ep.sendto(b"good", addrs[0])
            await eventually(rts[0], lambda: got == [b"good"])
        finally:
            ep.close()
        ep.sendto(b"after close", addrs[0])  # no error once closed either

    _run_real(1, body)


def test_oversized_and_text_channel_messages_close_the_channel() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        ended: list[str] = []

        async def reader(path: str, channel: Channel) -> None:
            try:
                while True:
                    await channel.recv()
            except ChannelClosed as exc:
                ended.append(str(exc))
                raise

        server = await rts[1].serve(addrs[1], _ok, reader)
        try:
            ch = await rts[0].connect(addrs[1], "/big", 5.0)
            await ch.send(b"q" * 5000)
            with pytest.raises(ChannelClosed):
                await ch.recv()
            async with aiohttp.ClientSession() as session:
                host, port = addrs[1]
                async with session.ws_connect(f"http://{host}:{port}/text") as ws:
                    await ws.send_str("hello")
                    msg = await ws.receive()
                    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            await eventually(rts[1], lambda: len(ended) == 2)
            assert any("text" in e for e in ended)
        finally:
            await server.close()

    _run_real(2, body, max_body=1000)


def test_plain_get_without_upgrade_is_refused() -> None:
    async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
        server = await rts[1].serve(addrs[1], _ok, _close)
        try:
            async with aiohttp.ClientSession() as session:
                host, port = addrs[1]
                async with session.get(f"http://{host}:{port}/v1/members") as resp:
                    assert resp.status == 400
                async with session.put(f"http://{host}:{port}/v1/members") as resp:
                    assert resp.status == 405
        finally:
            await server.close()

    _run_real(2, body)
