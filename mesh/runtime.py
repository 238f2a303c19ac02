"""The one seam between mesh and the outside world.

Protocol and scheduling code never reads the clock, draws randomness, opens a
socket or starts a process itself: it is handed a :class:`Runtime`. Two
implementations exist:

* :mod:`mesh.realtime` -- uvloop, UDP datagrams, aiohttp HTTP and websockets,
  worker processes.
* :mod:`sim.runtime` -- virtual time, a simulated network and a simulated
  executor, driven by the simulator's event loop.

Both run the same node code; ``tests/test_seam.py`` proves it.

Everything here is an interface. Implementations document their own
guarantees; the ones every implementation must keep are written on each
method and checked by the shared suite in ``tests/transport_suite.py``.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Protocol

from mesh.errors import MeshError

Address = tuple[str, int]
"""A host and port. Gossip (UDP) and the HTTP API share the port number."""

DatagramHandler = Callable[[bytes, Address], None]
"""Called with each datagram that arrives and its sender. Never called
concurrently with itself for one endpoint; it must not block."""


class ChannelClosed(MeshError):
    """The channel was closed, by either end or because the peer went away.

    Raised by :meth:`Channel.recv` and :meth:`Channel.send` once the channel can
    carry nothing more. It is the normal end of a conversation, not a bug.
    """


class Unreachable(MeshError):
    """A request or connection to a peer failed: it refused, timed out, or
    answered with something that is not a valid reply. The peer may be down,
    partitioned away, or may not share our secret."""


class DatagramEndpoint(Protocol):
    """A bound UDP-like socket: unreliable, unordered, bounded datagrams."""

    @property
    def local_address(self) -> Address: ...

    def sendto(self, data: bytes, addr: Address) -> None:
        """Queue ``data`` for ``addr``. Never raises for network trouble: a
        datagram that cannot be delivered is lost, as on a real network."""

    def close(self) -> None: ...


class Channel(Protocol):
    """A persistent, ordered, reliable stream of messages to one peer (a
    websocket in the real runtime). Messages are delivered whole."""

    async def send(self, data: bytes) -> None:
        """Send one message. Raises :class:`ChannelClosed` once closed."""

    async def recv(self) -> bytes:
        """The next message. Raises :class:`ChannelClosed` at the end."""

    async def close(self) -> None:
        """Close both directions. Idempotent."""


RequestHandler = Callable[[str, bytes], Awaitable[tuple[int, bytes]]]
"""``(path, body) -> (status, body)`` for one HTTP request (always POST)."""

ChannelHandler = Callable[[str, Channel], Awaitable[None]]
"""``(path, channel)`` for one accepted channel; the channel closes when the
handler returns."""


class TimerHandle(Protocol):
    """A scheduled callback, as returned by :meth:`Runtime.call_later`."""

    def cancel(self) -> None: ...


class Server(Protocol):
    """A listening HTTP server, as returned by :meth:`Runtime.serve`."""

    async def close(self) -> None: ...


class Runtime(Protocol):
    """Clock, randomness, network and executor for one node.

    ``rng`` is seeded: the simulator gives each node its own stream derived from
    the run's seed, so one seed gives one trace.
    """

    rng: random.Random

    def now(self) -> float:
        """Seconds on a monotonic clock (virtual time in the simulator)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this runtime's clock."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once, ``delay`` seconds from now on this runtime's
        clock. Callbacks of one runtime never run concurrently with each other."""

    async def open_datagram(self, bind: Address, handler: DatagramHandler) -> DatagramEndpoint:
        """Bind a datagram endpoint. ``handler`` receives every datagram."""

    async def serve(
        self, bind: Address, on_request: RequestHandler, on_channel: ChannelHandler
    ) -> Server:
        """Listen for HTTP requests and channels on ``bind`` (TCP, same port
        number as the datagram endpoint)."""

    async def request(self, addr: Address, path: str, body: bytes, timeout: float) -> bytes:
        """POST ``body`` to ``path`` on ``addr`` and return the reply body.
        Raises :class:`Unreachable` on any failure, including a non-200 status."""

    async def connect(self, addr: Address, path: str, timeout: float) -> Channel:
        """Open a channel to ``path`` on ``addr``. Raises :class:`Unreachable`."""
