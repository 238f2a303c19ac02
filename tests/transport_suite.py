"""The behaviour every :class:`mesh.runtime.Runtime` must have, as one shared suite.

How to run it against a runtime implementation
-----------------------------------------------
Subclass :class:`TransportSuite` in a ``test_*.py`` module, under a name that
starts with ``Test``, and implement one method::

    class TestSimTransport(TransportSuite):
        def run_with(self, n, body):
            ...

``run_with(n, body)`` must

1. create ``n`` runtimes ``rts`` and ``n`` distinct addresses ``addrs``, where
   ``addrs[i]`` is a ``(host, port)`` that ``rts[i]`` may bind a datagram
   endpoint *and* an HTTP server on, and that every runtime can reach;
2. run ``await body(rts, addrs)`` to completion on whatever event loop the
   runtimes need (the real runtime uses a fresh uvloop loop; the simulator its
   own loop and virtual time), re-raising anything ``body`` raises;
3. tear the runtimes down afterwards, and fail rather than hang if ``body``
   never finishes (a generous deadline is fine).

Bodies only wait through the runtime (``rt.sleep``, ``rt.now``), never through
asyncio's clock, so they run unchanged on virtual time. Bodies close what they
open. Implementations may add their own tests in the subclass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import pytest

from mesh.runtime import Address, Channel, ChannelClosed, Runtime, Unreachable

Body = Callable[[Sequence[Runtime], Sequence[Address]], Awaitable[None]]


async def eventually(rt: Runtime, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``predicate`` on ``rt``'s clock until it holds; fail after ``timeout``."""
    deadline = rt.now() + timeout
    while not predicate():
        if rt.now() > deadline:
            raise AssertionError(f"condition still false after {timeout}s")
        await rt.sleep(0.005)


async def _no_requests(path: str, body: bytes) -> tuple[int, bytes]:
    return 404, b""


async def _no_channels(path: str, channel: Channel) -> None:
    await channel.close()


async def _echo_channel(path: str, channel: Channel) -> None:
    while True:
        try:
            msg = await channel.recv()
        except ChannelClosed:
            return
        await channel.send(path.encode() + b":" + msg)


class TransportSuite:
    """Runtime contract tests. Not collected itself (no ``Test`` prefix)."""

    def run_with(self, n: int, body: Body) -> None:
        raise NotImplementedError("subclasses say how to build runtimes and run a body")

    # --- datagrams -----------------------------------------------------------
    def test_datagram_arrives_whole_with_the_senders_bound_address(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            got: list[tuple[bytes, Address]] = []
            a = await rts[0].open_datagram(addrs[0], lambda d, s: got.append((b"a:" + d, s)))
            b = await rts[1].open_datagram(addrs[1], lambda d, s: got.append((b"b:" + d, s)))
            try:
                assert tuple(a.local_address) == tuple(addrs[0])
                a.sendto(b"ping" * 100, addrs[1])
                await eventually(rts[1], lambda: len(got) == 1)
                assert got[0] == (b"b:" + b"ping" * 100, tuple(addrs[0]))
                b.sendto(b"pong", got[0][1])
                await eventually(rts[0], lambda: len(got) == 2)
                assert got[1] == (b"a:pong", tuple(addrs[1]))
            finally:
                a.close()
                b.close()

        self.run_with(2, body)

    def test_sendto_an_address_where_nobody_listens_does_not_raise(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            got: list[bytes] = []
            a = await rts[0].open_datagram(addrs[0], lambda d, s: got.append(d))
            try:
                for _ in range(3):
                    a.sendto(b"lost", addrs[1])
                    await rts[0].sleep(0.01)
                # the endpoint still works after sending into the void
                a.sendto(b"self", addrs[0])
                await eventually(rts[0], lambda: got == [b"self"])
            finally:
                a.close()

        self.run_with(2, body)

    # --- requests ------------------------------------------------------------
    def test_request_carries_path_and_body_and_returns_the_reply(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            seen: list[tuple[str, bytes]] = []

            async def on_request(path: str, data: bytes) -> tuple[int, bytes]:
                seen.append((path, data))
                return 200, b"re:" + data

            server = await rts[1].serve(addrs[1], on_request, _no_channels)
            try:
                reply = await rts[0].request(addrs[1], "/v1/echo", b"\x00hello\xff", 5.0)
                assert reply == b"re:\x00hello\xff"
                replies = await asyncio.gather(
                    *(rts[0].request(addrs[1], f"/v1/n/{i}", b"%d" % i, 5.0) for i in range(5))
                )
                assert replies == [b"re:%d" % i for i in range(5)]
                assert seen[0] == ("/v1/echo", b"\x00hello\xff")
                assert sorted(seen[1:]) == [(f"/v1/n/{i}", b"%d" % i) for i in range(5)]
                assert await rts[0].request(addrs[1], "/empty", b"", 5.0) == b"re:"
            finally:
                await server.close()

        self.run_with(2, body)

    def test_non_200_reply_raises_unreachable(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            async def on_request(path: str, data: bytes) -> tuple[int, bytes]:
                return (401 if path == "/auth" else 404), b"no"

            server = await rts[1].serve(addrs[1], on_request, _no_channels)
            try:
                for path in ("/auth", "/missing"):
                    with pytest.raises(Unreachable):
                        await rts[0].request(addrs[1], path, b"x", 5.0)
            finally:
                await server.close()

        self.run_with(2, body)

    def test_request_to_an_address_without_a_server_raises_unreachable(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            with pytest.raises(Unreachable):
                await rts[0].request(addrs[1], "/v1/members", b"x", 2.0)

        self.run_with(2, body)

    def test_request_slower_than_its_timeout_raises_unreachable(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            async def slow(path: str, data: bytes) -> tuple[int, bytes]:
                await rts[1].sleep(30.0)
                return 200, b"late"

            server = await rts[1].serve(addrs[1], slow, _no_channels)
            try:
                t0 = rts[0].now()
                with pytest.raises(Unreachable):
                    await rts[0].request(addrs[1], "/slow", b"", 0.2)
                assert 0.15 <= rts[0].now() - t0 < 5.0
            finally:
                await server.close()

        self.run_with(2, body)

    def test_closed_server_is_unreachable(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            async def ok(path: str, data: bytes) -> tuple[int, bytes]:
                return 200, b"ok"

            server = await rts[1].serve(addrs[1], ok, _no_channels)
            assert await rts[0].request(addrs[1], "/", b"", 5.0) == b"ok"
            await server.close()
            await server.close()  # idempotent
            with pytest.raises(Unreachable):
                await rts[0].request(addrs[1], "/", b"", 2.0)

        self.run_with(2, body)

    # --- channels ------------------------------------------------------------
    def test_channel_delivers_messages_in_order_both_ways(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            server = await rts[1].serve(addrs[1], _no_requests, _echo_channel)
            try:
                ch = await rts[0].connect(addrs[1], "/v1/chan", 5.0)
                msgs = [b"m%d" % i + b"\x00" * i for i in range(50)]
                for m in msgs:
                    await ch.send(m)
                got = [await ch.recv() for _ in msgs]
                assert got == [b"/v1/chan:" + m for m in msgs]
                await ch.close()
                await ch.close()  # idempotent
            finally:
                await server.close()

        self.run_with(2, body)

    def test_channel_recv_raises_channel_closed_after_the_server_side_ends(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            async def say_bye(path: str, channel: Channel) -> None:
                await channel.send(b"bye")

            server = await rts[1].serve(addrs[1], _no_requests, say_bye)
            try:
                ch = await rts[0].connect(addrs[1], "/x", 5.0)
                assert await ch.recv() == b"bye"
                with pytest.raises(ChannelClosed):
                    await ch.recv()
                with pytest.raises(ChannelClosed):
                    await ch.recv()
                await ch.close()
            finally:
                await server.close()

        self.run_with(2, body)

    def test_channel_closed_by_the_client_ends_the_servers_recv_and_refuses_sends(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            ended: list[str] = []

            async def wait_for_end(path: str, channel: Channel) -> None:
                try:
                    while True:
                        await channel.recv()
                except ChannelClosed:
                    ended.append(path)

            server = await rts[1].serve(addrs[1], _no_requests, wait_for_end)
            try:
                ch = await rts[0].connect(addrs[1], "/y", 5.0)
                await ch.send(b"one")
                await ch.close()
                with pytest.raises(ChannelClosed):
                    await ch.send(b"after close")
                with pytest.raises(ChannelClosed):
                    await ch.recv()
                await eventually(rts[1], lambda: ended == ["/y"])
            finally:
                await server.close()

        self.run_with(2, body)

    def test_server_close_ends_open_channels(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            server = await rts[1].serve(addrs[1], _no_requests, _echo_channel)
            ch = await rts[0].connect(addrs[1], "/z", 5.0)
            await ch.send(b"a")
            assert await ch.recv() == b"/z:a"
            await server.close()
            with pytest.raises(ChannelClosed):
                await ch.recv()
            await ch.close()

        self.run_with(2, body)

    def test_connect_to_an_address_without_a_server_raises_unreachable(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            with pytest.raises(Unreachable):
                await rts[0].connect(addrs[1], "/v1/chan", 2.0)

        self.run_with(2, body)

    # --- clock ---------------------------------------------------------------
    def test_now_is_monotonic_and_sleep_advances_it(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            rt = rts[0]
            last = rt.now()
            for _ in range(100):
                t = rt.now()
                assert t >= last
                last = t
            t0 = rt.now()
            await rt.sleep(0.05)
            # loop clocks have millisecond granularity; allow that much
            assert rt.now() - t0 >= 0.05 - 0.002
            t1 = rt.now()
            await rt.sleep(0)
            assert rt.now() >= t1

        self.run_with(1, body)

    def test_concurrent_sleeps_wake_in_deadline_order(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            rt = rts[0]
            woke: list[int] = []

            async def nap(i: int, seconds: float) -> None:
                await rt.sleep(seconds)
                woke.append(i)

            await asyncio.gather(nap(3, 0.09), nap(1, 0.01), nap(2, 0.05))
            assert woke == [1, 2, 3]

        self.run_with(1, body)

    def test_call_later_runs_callbacks_after_their_delay_in_order_unless_cancelled(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            rt = rts[0]
            fired: list[tuple[str, float]] = []
            t0 = rt.now()
            rt.call_later(0.06, lambda: fired.append(("late", rt.now() - t0)))
            rt.call_later(0.02, lambda: fired.append(("early", rt.now() - t0)))
            cancelled = rt.call_later(0.04, lambda: fired.append(("cancelled", 0.0)))
            cancelled.cancel()
            await eventually(rt, lambda: len(fired) == 2)
            assert [name for name, _ in fired] == ["early", "late"]
            assert fired[0][1] >= 0.02 - 0.002
            assert fired[1][1] >= 0.06 - 0.002
            await rt.sleep(0.05)
            assert len(fired) == 2

        self.run_with(1, body)

    def test_rng_is_a_seeded_random_stream(self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            draws = [rts[0].rng.random() for _ in range(5)]
            assert all(0.0 <= d < 1.0 for d in draws)
            assert len(set(draws)) == 5

        self.run_with(1, body)

    def test_run_blocking_returns_what_the_function_returns_and_raises_what_it_raises(
            self) -> None:
        async def body(rts: Sequence[Runtime], addrs: Sequence[Address]) -> None:
            assert await rts[0].run_blocking(sum, [1, 2, 3]) == 6
            with pytest.raises(ZeroDivisionError):
                await rts[0].run_blocking(divmod, 1, 0)

        self.run_with(1, body)
