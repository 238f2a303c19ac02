"""The real runtime: uvloop, UDP datagrams, aiohttp HTTP and websockets.

:class:`RealRuntime` implements :class:`mesh.runtime.Runtime` for real
processes. It is the only place (with :mod:`mesh._http`) where mesh touches
the clock, sockets and aiohttp, and the only place where their exceptions are
translated: every network failure of :meth:`RealRuntime.request` and
:meth:`RealRuntime.connect` becomes :class:`~mesh.runtime.Unreachable`, every
end of a channel becomes :class:`~mesh.runtime.ChannelClosed`.

Guarantees beyond the Runtime protocol:

* ``now()`` is the event loop's monotonic clock (``loop.time()``); ``wall()``
  is ``time.time()``; ``token_bytes`` is ``os.urandom``.
* ``rng`` is ``random.Random(seed)``; without a seed, one is drawn from
  ``os.urandom`` and kept in ``seed`` so a run can be reported.
* Request and reply bodies are read up to ``max_body + 1`` bytes and never
  further, so memory per request is bounded. Without a gate an oversized
  request body is handed to the request handler cut at ``max_body + 1``
  bytes, where the frame codec rejects it as ``oversized``; with a gate, a
  body is read only up to the size the gate admitted (413 beyond it).
* Connections are capped per source and in total, closed if they have not
  authenticated within ``handshake_timeout`` or stay silent for
  ``idle_timeout``, and counted in ``metrics`` (``http_refused_*``,
  ``http_closed_*``); the UDP socket asks for a ``udp_recv_buffer`` buffer.
* A datagram handler that raises is logged; the endpoint keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from mesh import _http, _loop
from mesh.config import DEFAULT, Config
from mesh.metrics import Metrics
from mesh.runtime import (
    Address,
    Channel,
    ChannelHandler,
    DatagramHandler,
    Gate,
    RequestHandler,
    Server,
)

__all__ = ["SYSTEM", "RealDatagramEndpoint", "RealRuntime", "SystemSource", "run"]

log = logging.getLogger("mesh.realtime")

T = TypeVar("T")


def _logged(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # keep the loop's other timers running; the bug is logged
        log.exception("timer callback %r failed", callback)


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: DatagramHandler) -> None:
        self._handler = handler

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            self._handler(data, (addr[0], addr[1]))
        except Exception:  # a handler bug must not close the socket for everyone
            log.exception("datagram handler failed on a %d-byte datagram from %s", len(data), addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable, ...) for earlier sends: on a real
        # network a datagram may be lost, which the gossip layer expects.
        log.debug("datagram error: %s", exc)


class SystemSource:
    """The host's wall clock and the kernel's randomness, for codecs made
    outside a runtime (command-line queries, the client before it connects)."""

    __slots__ = ()

    def wall(self) -> float:
        return time.time()

    def token_bytes(self, n: int) -> bytes:
        return os.urandom(n)


SYSTEM = SystemSource()


class RealDatagramEndpoint:
    """A bound UDP socket. ``sendto`` never raises for network trouble."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self._local: Address = (sockname[0], sockname[1])

    @property
    def local_address(self) -> Address:
        return self._local

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._transport.is_closing():
            return
        try:
            self._transport.sendto(data, addr)
        except OSError as exc:  # e.g. no route to host: the datagram is lost
            log.debug("datagram to %s lost: %s", addr, exc)

    def close(self) -> None:
        self._transport.close()


class RealRuntime:
    """Clock, randomness and network of one real process.

    One runtime can serve one node (it may also be shared by several nodes in
    one process, as in tests). Call :meth:`close` when done: it closes the
    shared HTTP client session.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        max_body: int = DEFAULT.max_http_body,
        ws_close_timeout: float = 2.0,
        config: Config = DEFAULT,
        metrics: Metrics | None = None,
    ) -> None:
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "big")
        self.seed = seed
        self.rng = random.Random(seed)
        self.max_body = max_body
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        """Connection-level counters (refused, closed idle); a node shares its own."""
        self.limits = _http.ServerLimits(
            max_body=max_body, ws_close_timeout=ws_close_timeout,
            handshake_timeout=config.handshake_timeout, idle_timeout=config.idle_timeout,
            body_timeout=config.body_timeout, max_connections=config.max_connections,
            max_connections_per_source=config.max_connections_per_source,
            ws_heartbeat=config.ws_heartbeat)
        self._client = _http.Client(max_body=max_body, ws_close_timeout=ws_close_timeout)

    # --- clock -------------------------------------------------------------
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> float:
        return time.time()

    def token_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, _logged, callback)

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    # --- datagrams ---------------------------------------------------------
    async def open_datagram(self, bind: Address, handler: DatagramHandler) -> RealDatagramEndpoint:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(handler), local_addr=bind
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._size_receive_buffer(sock)
        return RealDatagramEndpoint(transport)

    def _size_receive_buffer(self, sock: socket.socket) -> None:
        """Ask for ``udp_recv_buffer`` bytes: past net.core.rmem_max where the
        process may (SO_RCVBUFFORCE, with CAP_NET_ADMIN), else up to it."""
        want = self.config.udp_recv_buffer
        force = getattr(socket, "SO_RCVBUFFORCE", None)
        try:
            if force is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, want)
                except PermissionError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
        except OSError as exc:
            log.warning("cannot size the UDP receive buffer: %s", exc)
            return
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if got < want:
            log.info("UDP receive buffer is %d bytes (asked %d; raise net.core.rmem_max "
                     "for more)", got, want)

    # --- HTTP and channels -------------------------------------------------
    async def serve(
        self, bind: Address, on_request: RequestHandler, on_channel: ChannelHandler,
        gate: Gate | None = None, on_get: _http.GetHandler | None = None,
    ) -> Server:
        """As :meth:`mesh.runtime.Runtime.serve`; ``on_get`` serves plain
        GETs (``async (path, headers, query) -> (status, headers, body)``),
        neither gated nor sealed: they do their own authentication."""
        return await _http.serve(bind, on_request, on_channel, limits=self.limits, gate=gate,
                                 metrics=self.metrics, on_get=on_get)

    async def request(self, addr: Address, path: str, body: bytes, timeout: float,
                      token: bytes | None = None) -> bytes:
        return await self._client.request(addr, path, body, timeout, token)

    async def connect(self, addr: Address, path: str, timeout: float,
                      token: bytes | None = None) -> Channel:
        return await self._client.connect(addr, path, timeout, token)

    async def close(self) -> None:
        """Close the shared HTTP client session. Idempotent."""
        await self._client.close()


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh uvloop event loop (plain asyncio
    where uvloop is not available) and return its result."""
    return _loop.run(main)
