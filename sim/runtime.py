"""``SimRuntime``: the :class:`mesh.runtime.Runtime` of a node in the simulator.

One runtime per node process: a restarted node gets a new runtime (fresh
randomness, same host and address). Node code cannot tell it from the real
runtime except by what happens: time is virtual, the network is
:class:`sim.network.Network`, and faults are injected from outside.

Guarantees beyond the Runtime contract:

* ``rng`` is ``random.Random(f"{seed}:{name}:{generation}")``: string seeds are
  hashed with SHA-512 by :mod:`random`, so the stream does not depend on
  ``PYTHONHASHSEED`` or on anything but the run seed, the node name and how many
  times that node has been restarted.
* ``now()`` is the host's own monotonic clock: a random origin per host (so
  timestamps from two nodes are not comparable, as on real machines) and a rate
  that a clock-skew fault can change.
* ``sleep()`` wakes up through the host: a paused host's timers do not fire
  until it resumes and a slow host's fire late.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from typing import Any

from mesh.runtime import (
    Address,
    ChannelClosed,
    ChannelHandler,
    DatagramHandler,
    Gate,
    RequestHandler,
    Unreachable,
)
from sim._streams import SimChannel, SimServer, http_request, open_channel
from sim.network import Host, Network, SimEndpoint

SIM_EPOCH = 1_700_000_000.0
"""The wall-clock time at which every simulation starts (November 2023)."""


def node_rng(seed: int | str, name: str, generation: int = 0) -> random.Random:
    """The random stream of node ``name`` in its ``generation``-th life."""
    return random.Random(f"{seed}:{name}:{generation}")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class SimTimer:
    """A :class:`mesh.runtime.TimerHandle`: cancel() works even after the
    timer fired on a paused host and its callback is held until resume."""

    __slots__ = ("_callback", "_dead", "handle")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._dead = False
        self.handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        self._dead = True
        if self.handle is not None:
            self.handle.cancel()

    def fire(self) -> None:
        if not self._dead:
            self._dead = True
            self._callback()


class AddressInUse(OSError):
    """Something on this simulated host already listens on that address; stop
    it first (a restarted node must close its old endpoint and server)."""


class SimRuntime:
    """A node's clock, randomness and network inside the simulator."""

    def __init__(self, net: Network, host: Host, rng: random.Random) -> None:
        self.net = net
        self.host = host
        self.rng = rng
        self._loop = net.loop
        # Nonces and ids draw from their own stream, derived from (not drawn
        # from) rng, so sealing frames never shifts the protocol's randomness.
        self._entropy = random.Random(hashlib.sha256(repr(rng.getstate()).encode()).digest())

    def __repr__(self) -> str:
        return f"SimRuntime({self.host.name})"

    # --- clock ---------------------------------------------------------------
    def now(self) -> float:
        h = self.host
        return h.clock_base + h.clock_rate * (self._loop._now - h.clock_t0)

    def wall(self) -> float:
        """Virtual time since the run began, on a calendar every simulated host
        shares (``SIM_EPOCH``): the simulated hosts keep NTP-synchronised clocks."""
        return SIM_EPOCH + self._loop._now

    def token_bytes(self, n: int) -> bytes:
        return self._entropy.randbytes(n)

    async def sleep(self, seconds: float) -> None:
        loop = self._loop
        host = self.host
        if seconds <= 0 and not host.paused and host.slow <= 1.0:
            await asyncio.sleep(0)
            return
        fut = loop.create_future()
        delay = max(0.0, seconds) / host.clock_rate
        handle = loop.call_at(loop._now + delay, host.admit, _wake, fut)
        try:
            await fut
        finally:
            handle.cancel()

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)  # inline: simulated time does not pass, the trace stays one

    def call_later(self, delay: float, callback: Callable[[], None]) -> SimTimer:
        loop = self._loop
        host = self.host
        timer = SimTimer(callback)
        when = loop._now + max(0.0, delay) / host.clock_rate
        timer.handle = loop.call_at(when, host.admit, timer.fire)
        return timer

    # --- network -------------------------------------------------------------
    def _check_bind(self, bind: Address) -> None:
        if bind[1] != self.host.addr[1] or bind[0] not in (self.host.addr[0], "0.0.0.0", ""):
            raise AddressInUse(
                f"simulated host {self.host.addr[0]}:{self.host.addr[1]} cannot bind "
                f"{bind[0]}:{bind[1]}: a simulated node binds its own address"
            )

    async def open_datagram(self, bind: Address, handler: DatagramHandler) -> SimEndpoint:
        self._check_bind(bind)
        host = self.host
        if host.endpoint is not None:
            raise AddressInUse(f"datagram port {bind[0]}:{bind[1]} is already bound")
        ep = SimEndpoint(host, handler)
        host.endpoint = ep
        return ep

    # Admission tokens travel in-band: a request body is prefixed with its
    # token (2-byte length, 0xffff for none), a channel's first message is
    # its token (empty for none) and, with a token, the gate's reply is the
    # first message back. Every request and channel of the simulator goes
    # through these methods, so both ends always agree on the framing.
    async def serve(
        self, bind: Address, on_request: RequestHandler, on_channel: ChannelHandler,
        gate: Gate | None = None,
    ) -> SimServer:
        self._check_bind(bind)
        host = self.host
        if host.server is not None:
            raise AddressInUse(f"HTTP port {bind[0]}:{bind[1]} is already served")
        server = SimServer(host, *_admitting(gate, on_request, on_channel))
        host.server = server
        return server

    async def request(self, addr: Address, path: str, body: bytes, timeout: float,
                      token: bytes | None = None) -> bytes:
        head = _NO_TOKEN if token is None else len(token).to_bytes(2, "big") + token
        return await http_request(self.net, self.host, addr, path, head + body, timeout)

    async def connect(self, addr: Address, path: str, timeout: float,
                      token: bytes | None = None) -> SimChannel:
        ch = await open_channel(self.net, self.host, addr, path, timeout)
        await ch.send(token or b"")
        if token is not None:
            try:
                ch.reply = await asyncio.wait_for(ch.recv(), timeout)  # type: ignore[attr-defined]
            except (TimeoutError, ChannelClosed) as exc:
                await ch.close()
                raise Unreachable(f"{addr[0]}:{addr[1]}{path} did not answer the handshake: "
                                  f"{exc}") from None
        return ch


_NO_TOKEN = b"\xff\xff"


def _admitting(gate: Gate | None, on_request: RequestHandler, on_channel: ChannelHandler
               ) -> tuple[RequestHandler, ChannelHandler]:
    """The server side of the in-band token framing, and the gate."""

    async def request(path: str, raw: bytes) -> tuple[int, bytes]:
        n = int.from_bytes(raw[:2], "big")
        token, body = (None, raw[2:]) if n == 0xFFFF else (raw[2:2 + n], raw[2 + n:])
        if gate is None:
            return await on_request(path, body)
        admission = gate("request", path, token, len(body))
        if admission is None:
            return 401, b""
        if len(body) > admission.max_body:
            return 413, b""
        return await on_request(path, body, admission)

    async def channel(path: str, ch: SimChannel) -> None:
        token = await ch.recv()
        if gate is None:
            await on_channel(path, ch)
            return
        admission = gate("channel", path, token or None, None)
        if admission is None:
            await ch.close()
            return
        if admission.reply is not None:
            await ch.send(admission.reply)
        await on_channel(path, ch, admission)

    return request, channel
