"""Connection guards of the real HTTP server: caps on connections in total
and per source, and closing connections that never authenticate or fall
silent. Private to :mod:`mesh._http`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mesh.metrics import Metrics


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one server lets its connections cost (see the ``Config`` block
    "wire security and bounds" for each value's reason)."""

    max_body: int
    ws_close_timeout: float = 2.0
    handshake_timeout: float = 5.0
    idle_timeout: float = 30.0
    body_timeout: float = 30.0
    max_connections: int = 512
    max_connections_per_source: int = 128
    ws_heartbeat: float = 10.0


class Connections:
    """Open connections of one server, by source host: the caps, and who has
    authenticated."""

    def __init__(self, limits: ServerLimits, metrics: Metrics | None) -> None:
        self.limits = limits
        self.metrics = metrics if metrics is not None else Metrics()
        self.by_source: dict[str, int] = {}
        self.total = 0
        self.by_transport: dict[Any, Guarded] = {}

    def admit(self, source: str) -> bool:
        n = self.by_source.get(source, 0)
        if self.total >= self.limits.max_connections:
            self.metrics.inc("http_refused_total_connections")
            return False
        if n >= self.limits.max_connections_per_source:
            self.metrics.inc("http_refused_source_connections")
            return False
        self.by_source[source] = n + 1
        self.total += 1
        return True

    def release(self, source: str) -> None:
        self.total -= 1
        n = self.by_source[source] - 1
        if n:
            self.by_source[source] = n
        else:
            del self.by_source[source]

    def authenticated(self, transport: Any) -> None:
        guard = self.by_transport.get(transport)
        if guard is not None:
            guard.authed = True


class Guarded(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection: counts it against the
    caps, and closes it once it has been silent for ``idle_timeout`` (a
    connection that has not authenticated: ``handshake_timeout`` after it
    opened, whatever it sent)."""

    def __init__(self, inner: asyncio.Protocol, conns: Connections) -> None:
        self._inner = inner
        self._conns = conns
        self._transport: Any = None
        self._source: str | None = None
        self._loop = asyncio.get_running_loop()
        self._opened = self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self.authed = False

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if peer else ""
        if not self._conns.admit(source):
            transport.abort()
            return
        self._source = source
        self._transport = transport
        self._conns.by_transport[transport] = self
        self._inner.connection_made(transport)
        self._timer = self._loop.call_later(self._conns.limits.handshake_timeout, self._check)

    def _check(self) -> None:
        limits = self._conns.limits
        now = self._loop.time()
        if not self.authed:
            self._conns.metrics.inc("http_closed_unauthenticated")
            self._transport.close()
            return
        silent = now - self._last
        if silent >= limits.idle_timeout:
            self._conns.metrics.inc("http_closed_idle")
            self._transport.close()
            return
        self._timer = self._loop.call_later(limits.idle_timeout - silent, self._check)

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._source is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._source is None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._conns.by_transport.pop(self._transport, None)
        self._conns.release(self._source)
        self._source = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
