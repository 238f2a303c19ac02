"""Reliable streams over the simulated network: HTTP requests and channels.

A stream behaves like TCP: ordered and reliable while the path works, with
loss turned into retransmission delay. If a partition or clog cuts the path, or
the peer is paused, nothing comes back and the caller's timeout fires. A peer
whose process is down refuses at once (after a round trip), like a closed port.

Everything that completes on a host (a reply, a channel message, a timeout) goes
through :meth:`Host.admit`, so a paused host does not see it until it resumes
and a slow host sees it late.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from mesh.runtime import Address, ChannelClosed, ChannelHandler, RequestHandler, Unreachable
from sim import trace as tr
from sim.network import Host, Network

log = logging.getLogger("sim.streams")

_CONNECT_PACKETS = 3
"""One-way trips before a request reaches the server: SYN, SYN-ACK, data."""

_STALL_RETRY = 0.5
"""Seconds between retries of a channel message whose path is cut."""


class SimServer:
    """A listening HTTP server on a simulated host."""

    def __init__(self, host: Host, on_request: RequestHandler, on_channel: ChannelHandler) -> None:
        self.host = host
        self.on_request = on_request
        self.on_channel = on_channel
        self.closed = False

    async def close(self) -> None:
        """Stop listening; cancel requests in progress and close channels."""
        if self.closed:
            return
        self.closed = True
        host = self.host
        if host.server is self:
            host.server = None
        for ch in list(host.channels):
            ch.abort()
        tasks = list(host.tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _forget(tasks: dict[asyncio.Task[Any], None]) -> Any:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.pop(task, None)

    return done


def _complete(fut: asyncio.Future[Any], status: int, body: Any) -> None:
    if fut.done():
        return
    if isinstance(body, BaseException):
        fut.set_exception(body)
    elif status == 200:
        fut.set_result(body)
    else:
        fut.set_exception(Unreachable(f"peer answered HTTP {status}"))


def _timeout(fut: asyncio.Future[Any], what: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(Unreachable(f"{what} timed out after {timeout}s"))


async def _await_with_timeout(
    net: Network, src: Host, fut: asyncio.Future[Any], what: str, timeout: float
) -> Any:
    # The timeout is a timer on the caller's host, so it is held while the host
    # is paused, like every other timer of that host.
    loop = net.loop
    delay = timeout / src.clock_rate
    handle = loop.call_at(loop._now + delay, src.admit, _timeout, fut, what, timeout)
    try:
        return await fut
    finally:
        handle.cancel()


class _HttpExchange:
    __slots__ = ("body", "dst", "fut", "net", "path", "src", "src_epoch")

    def __init__(self, net: Network, src: Host, dst: Host, path: str, body: bytes,
                 fut: asyncio.Future[Any]) -> None:
        self.net = net
        self.src = src
        self.src_epoch = src.epoch
        self.dst = dst
        self.path = path
        self.body = body
        self.fut = fut

    def arrive(self) -> None:
        dst = self.dst
        if dst.down or dst.server is None:
            self.reply(0, Unreachable(f"connection to {dst.addr} refused"))
            return
        dst.admit(self.start)

    def start(self) -> None:
        dst = self.dst
        server = dst.server
        if server is None:
            self.reply(0, Unreachable(f"connection to {dst.addr} refused"))
            return
        task = self.net.loop.create_task(self.handle(server), name=f"http:{dst.name}:{self.path}")
        dst.tasks[task] = None
        task.add_done_callback(_forget(dst.tasks))

    async def handle(self, server: SimServer) -> None:
        try:
            status, resp = await server.on_request(self.path, self.body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A real HTTP server answers 500 and logs; the simulator also keeps
            # it, and the run fails its no-errors invariant.
            self.net.errors.append(f"{self.dst.name} {self.path}: {type(exc).__name__}: {exc}")
            log.exception("request handler for %s on %s raised", self.path, self.dst.name)
            status, resp = 500, b""
        if self.dst.down:
            return
        self.reply(status, resp)

    def reply(self, status: int, resp: Any) -> None:
        net = self.net
        now = net.loop._now
        src, dst = self.src, self.dst
        if isinstance(resp, bytes):
            net.sent += 1
            net.bytes_sent += len(resp)
            if not net.can_stream(dst, src) or dst.paused:
                net.dropped += 1
                net.trace.packet(now, tr.DROP_CUT, dst.idx, src.idx, resp, 0.0)
                return
            due = now + net.stream_delay(dst, src)
            net.trace.packet(now, tr.HTTP_RESP, dst.idx, src.idx, resp, due)
        else:
            due = now + net.latency(dst, src)
        net.loop.call_at(due, self.deliver, status, resp)

    def deliver(self, status: int, resp: Any) -> None:
        if self.src.epoch != self.src_epoch:
            return
        self.src.admit(_complete, self.fut, status, resp)


async def http_request(net: Network, src: Host, addr: Address, path: str, body: bytes,
                       timeout: float) -> bytes:
    """One POST from ``src`` to ``addr``; see the module docstring."""
    loop = net.loop
    now = loop._now
    fut: asyncio.Future[bytes] = loop.create_future()
    net.sent += 1
    net.bytes_sent += len(body)
    dst = net.hosts.get(addr)
    if dst is None:
        net.dropped += 1
        net.trace.packet(now, tr.DROP_NOHOST, src.idx, 0, body, 0.0)
    elif src.down or src.paused or not net.can_stream(src, dst):
        net.dropped += 1
        net.trace.packet(now, tr.DROP_CUT, src.idx, dst.idx, body, 0.0)
    else:
        due = now + net.stream_delay(src, dst, _CONNECT_PACKETS)
        net.trace.packet(now, tr.HTTP_REQ, src.idx, dst.idx, body, due)
        ex = _HttpExchange(net, src, dst, path, body, fut)
        loop.call_at(due, ex.arrive)
    return await _await_with_timeout(net, src, fut, f"request to {addr[0]}:{addr[1]}{path}",
                                     timeout)


class SimChannel:
    """One end of a simulated channel (a websocket in the real runtime):
    ordered, reliable, whole messages; see :class:`mesh.runtime.Channel`."""

    def __init__(self, net: Network, host: Host) -> None:
        self.net = net
        self.host = host
        self.epoch = host.epoch
        self.peer: SimChannel | None = None
        self._inbox: deque[bytes | None] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._out: deque[bytes | None] = deque()
        self._last_due = 0.0
        self._stall: asyncio.TimerHandle | None = None
        host.channels[self] = None

    # --- sending ---------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        if self._closed:
            raise ChannelClosed("channel is closed; open a new one")
        self.net.sent += 1
        self.net.bytes_sent += len(data)
        self._out.append(bytes(data))
        self._pump()

    def _pump(self) -> None:
        self._stall = None
        peer = self.peer
        if peer is None:
            return
        net = self.net
        loop = net.loop
        while self._out:
            if self.host.down:
                self._out.clear()
                return
            if not net.can_stream(self.host, peer.host):
                if self._stall is None:
                    self._stall = loop.call_at(loop._now + _STALL_RETRY, self._pump)
                return
            item = self._out.popleft()
            now = loop._now
            due = max(now + net.stream_delay(self.host, peer.host), self._last_due)
            self._last_due = due
            if item is not None:
                net.trace.packet(now, tr.CHAN_MSG, self.host.idx, peer.host.idx, item, due)
            loop.call_at(due, peer._arrive, item)

    def _arrive(self, item: bytes | None) -> None:
        host = self.host
        if host.epoch != self.epoch:
            return
        host.admit(self._push, item)

    def _push(self, item: bytes | None) -> None:
        if self._closed:
            return
        self._inbox.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # --- receiving -------------------------------------------------------------
    async def recv(self) -> bytes:
        while True:
            if self._inbox:
                item = self._inbox.popleft()
                if item is None:
                    self._finish()
                    raise ChannelClosed("the peer closed the channel")
                return item
            if self._closed:
                raise ChannelClosed("channel is closed")
            self._waiter = self.net.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    # --- closing ---------------------------------------------------------------
    async def close(self) -> None:
        if self._closed:
            return
        self._out.append(None)
        self._pump()
        self._finish()

    def _finish(self) -> None:
        self._closed = True
        self.host.channels.pop(self, None)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def abort(self) -> None:
        """The process behind this end died: the peer sees the channel close."""
        if self._closed:
            return
        peer = self.peer
        self._finish()
        self._out.clear()
        if peer is not None:
            loop = self.net.loop
            due = max(loop._now + self.net.latency(self.host, peer.host), self._last_due)
            loop.call_at(due, peer._arrive, None)


class _Connect:
    __slots__ = ("dst", "fut", "net", "path", "src", "src_epoch")

    def __init__(self, net: Network, src: Host, dst: Host, path: str,
                 fut: asyncio.Future[Any]) -> None:
        self.net = net
        self.src = src
        self.src_epoch = src.epoch
        self.dst = dst
        self.path = path
        self.fut = fut

    def arrive(self) -> None:
        if self.dst.down or self.dst.server is None:
            self.answer(Unreachable(f"connection to {self.dst.addr} refused"))
            return
        self.dst.admit(self.accept)

    def accept(self) -> None:
        server: SimServer | None = self.dst.server
        if server is None:
            self.answer(Unreachable(f"connection to {self.dst.addr} refused"))
            return
        net = self.net
        mine = SimChannel(net, self.src)
        theirs = SimChannel(net, self.dst)
        mine.epoch = self.src_epoch
        mine.peer, theirs.peer = theirs, mine
        task = net.loop.create_task(self.serve(server, theirs), name=f"chan:{self.dst.name}")
        self.dst.tasks[task] = None
        task.add_done_callback(_forget(self.dst.tasks))
        self.answer(mine)

    async def serve(self, server: SimServer, ch: SimChannel) -> None:
        try:
            await server.on_channel(self.path, ch)
        except asyncio.CancelledError:
            raise
        except ChannelClosed:
            pass  # the conversation ended; normal
        except Exception as exc:
            self.net.errors.append(f"{self.dst.name} channel {self.path}: "
                                   f"{type(exc).__name__}: {exc}")
            log.exception("channel handler for %s on %s raised", self.path, self.dst.name)
        finally:
            if not self.dst.down:
                await ch.close()

    def answer(self, result: Any) -> None:
        loop = self.net.loop
        due = loop._now + self.net.latency(self.dst, self.src)
        loop.call_at(due, self.deliver, result)

    def deliver(self, result: Any) -> None:
        if self.src.epoch != self.src_epoch:
            return
        self.src.admit(self._set, result)

    def _set(self, result: Any) -> None:
        if self.fut.done():
            if isinstance(result, SimChannel):
                result.abort()  # the caller gave up; drop the connection
            return
        if isinstance(result, BaseException):
            self.fut.set_exception(result)
        else:
            self.fut.set_result(result)


async def open_channel(net: Network, src: Host, addr: Address, path: str,
                       timeout: float) -> SimChannel:
    """Open a channel from ``src`` to ``path`` on ``addr``."""
    loop = net.loop
    fut: asyncio.Future[SimChannel] = loop.create_future()
    dst = net.hosts.get(addr)
    if dst is not None and not src.down and not src.paused and net.can_stream(src, dst):
        due = loop._now + net.stream_delay(src, dst, _CONNECT_PACKETS - 1)
        loop.call_at(due, _Connect(net, src, dst, path, fut).arrive)
    return await _await_with_timeout(net, src, fut, f"connect to {addr[0]}:{addr[1]}{path}",
                                     timeout)
