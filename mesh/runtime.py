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
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from mesh.errors import MeshError

T = TypeVar("T")

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


RequestHandler = Callable[..., Awaitable[tuple[int, bytes]]]
"""``(path, body) -> (status, body)`` for one HTTP request (always POST);
``(path, body, admission)`` when the server has a :data:`Gate`."""

ChannelHandler = Callable[..., Awaitable[None]]
"""``(path, channel)`` for one accepted channel, ``(path, channel,
admission)`` when the server has a :data:`Gate`; the channel closes when the
handler returns."""


@dataclass(frozen=True, slots=True)
class Admission:
    """A gate's yes: how large a body to read, what to answer the upgrade
    with (``reply``, handed to the connecting side as ``channel.reply``), and
    a value for the handler (``context``)."""

    max_body: int
    reply: bytes | None = None
    context: Any = None


Gate = Callable[[str, str, "bytes | None", "int | None"], "Admission | None"]
"""``(kind, path, token, length) -> Admission | None``: called for every
request (``kind == "request"``, ``length`` its declared body size) and
channel (``"channel"``) before a byte of the body is read or the upgrade is
answered, with the token the other side passed to :meth:`Runtime.request` or
:meth:`Runtime.connect` (``None``: it gave none). ``None`` refuses (HTTP 401,
connection closed)."""


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

    def wall(self) -> float:
        """Seconds since the Unix epoch (virtual in the simulator). Only for
        what must compare across hosts and restarts: frame timestamps and
        epochs, and a node's first incarnation. Never for timeouts."""

    def token_bytes(self, n: int) -> bytes:
        """``n`` unpredictable bytes for nonces and ids (``os.urandom`` in the
        real runtime; a stream derived from the seed in the simulator)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this runtime's clock."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once, ``delay`` seconds from now on this runtime's
        clock. Callbacks of one runtime never run concurrently with each other."""

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)``: blocking work such as spill-file I/O, hashing or
        sealing a large chunk, off the event loop (a thread in the real
        runtime; inline in the simulator, so its traces stay deterministic).
        ``fn`` must not touch state the loop's callbacks use."""

    async def open_datagram(self, bind: Address, handler: DatagramHandler) -> DatagramEndpoint:
        """Bind a datagram endpoint. ``handler`` receives every datagram."""

    async def serve(
        self, bind: Address, on_request: RequestHandler, on_channel: ChannelHandler,
        gate: Gate | None = None,
    ) -> Server:
        """Listen for HTTP requests and channels on ``bind`` (TCP, same port
        number as the datagram endpoint). With a ``gate``, every request and
        channel is admitted by it first and the handlers get its
        :class:`Admission`; a body is read up to the admitted size only."""

    async def request(self, addr: Address, path: str, body: bytes, timeout: float,
                      token: bytes | None = None) -> bytes:
        """POST ``body`` to ``path`` on ``addr`` and return the reply body.
        ``token`` reaches the server's gate. Raises :class:`Unreachable` on
        any failure, including a non-200 status."""

    async def connect(self, addr: Address, path: str, timeout: float,
                      token: bytes | None = None) -> Channel:
        """Open a channel to ``path`` on ``addr``, passing ``token`` to the
        server's gate; the channel's ``reply`` attribute holds the gate's
        :attr:`Admission.reply`. Raises :class:`Unreachable`."""
