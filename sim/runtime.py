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
import random
from collections.abc import Callable

from mesh.runtime import Address, ChannelHandler, DatagramHandler, RequestHandler
from sim._streams import SimChannel, SimServer, http_request, open_channel
from sim.network import Host, Network, SimEndpoint


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

    def __repr__(self) -> str:
        return f"SimRuntime({self.host.name})"

    # --- clock ---------------------------------------------------------------
    def now(self) -> float:
        h = self.host
        return h.clock_base + h.clock_rate * (self._loop._now - h.clock_t0)

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

    async def serve(
        self, bind: Address, on_request: RequestHandler, on_channel: ChannelHandler
    ) -> SimServer:
        self._check_bind(bind)
        host = self.host
        if host.server is not None:
            raise AddressInUse(f"HTTP port {bind[0]}:{bind[1]} is already served")
        server = SimServer(host, on_request, on_channel)
        host.server = server
        return server

    async def request(self, addr: Address, path: str, body: bytes, timeout: float) -> bytes:
        return await http_request(self.net, self.host, addr, path, body, timeout)

    async def connect(self, addr: Address, path: str, timeout: float) -> SimChannel:
        return await open_channel(self.net, self.host, addr, path, timeout)
