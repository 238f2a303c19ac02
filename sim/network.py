"""The simulated network: hosts, latency, loss, duplication, reordering,
partitions (two-way and one-way) and clogged interfaces.

Everything happens on a :class:`~sim._loop.SimLoop`: a datagram "in flight" is
a timer that fires at its arrival time. Randomness comes from one
:class:`random.Random` owned by the network and seeded from the run's seed, and
every packet is recorded in the :class:`~sim.trace.Trace`, so a seed fixes the
whole history.

The model, in short:

* Each host sits in one of ``zones`` zones. A packet between two hosts takes the
  zone pair's base latency (``latency_local`` inside a zone; drawn once per pair
  between ``latency_min`` and ``latency_max`` otherwise) plus an exponential
  jitter of mean ``jitter`` times the base. Jitter alone reorders packets that
  are sent close together; ``reorder`` adds a larger random delay to a fraction.
* ``loss`` drops each datagram independently; ``duplicate`` delivers a second
  copy with its own latency. Streams (HTTP, channels) are reliable: loss only
  costs them a retransmission delay (``tcp_rto``, doubling per loss).
* A partition puts hosts into groups and cuts some directed group pairs. A cut
  drops datagrams and stalls streams (requests then time out). A one-way
  partition cuts one direction only.
* A clogged host (FoundationDB's "clog") holds every datagram to or from it
  until it is unclogged, then lets them go, late and in a burst.
* A paused host keeps its address but runs nothing: what arrives for it is held
  (up to ``held_max`` items, like a socket buffer) and handed over, in order,
  when it resumes. It sends nothing while paused.
* A slow host processes each event (an arrival or a timer) on a serial CPU that
  takes ``cpu_cost * slow`` seconds per event, so it lags under load.
* A down host (crashed process) has no endpoint and no server: datagrams to it
  vanish and requests are refused.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mesh.metrics import Metrics
from mesh.runtime import Address, DatagramHandler
from sim import trace as tr
from sim._loop import SimLoop
from sim.trace import Trace


@dataclass(frozen=True, slots=True)
class NetConfig:
    """Settings of the simulated network. Times in seconds."""

    zones: int = 3
    """Latency zones (think racks or availability zones)."""
    latency_local: float = 0.0002
    """Base one-way latency inside a zone."""
    latency_min: float = 0.001
    """Smallest base one-way latency between two different zones."""
    latency_max: float = 0.02
    """Largest base one-way latency between two different zones."""
    jitter: float = 0.25
    """Mean of the exponential per-packet extra delay, as a fraction of the base."""
    loss: float = 0.0
    """Probability that a datagram is lost."""
    duplicate: float = 0.0
    """Probability that a datagram is delivered twice."""
    reorder: float = 0.0
    """Probability that a datagram is delayed by up to ``reorder_delay`` more."""
    reorder_delay: float = 0.05
    tcp_rto: float = 0.2
    """Retransmission delay a stream packet pays per loss (doubles each time)."""
    cpu_cost: float = 0.001
    """Seconds of CPU one event costs on a host of ``slow`` = 1 when it is made
    slow; hosts that are not slow are modelled as infinitely fast."""
    held_max: int = 1024
    """Items held for a paused host before further ones are dropped."""

    def with_(self, **changes: Any) -> NetConfig:
        """A copy with ``changes`` applied."""
        from dataclasses import replace

        return replace(self, **changes)


class Host:
    """One address on the network and the machine behind it. Outlives the
    node processes that run on it (a restart binds the same address again)."""

    __slots__ = (
        "_held_dropped",
        "addr",
        "busy_until",
        "channels",
        "clock_base",
        "clock_rate",
        "clock_t0",
        "clog_held",
        "clogged",
        "down",
        "endpoint",
        "epoch",
        "group",
        "held",
        "idx",
        "isolated",
        "name",
        "net",
        "paused",
        "resumed",
        "server",
        "slow",
        "tasks",
        "zone",
    )

    def __init__(self, net: Network, idx: int, addr: Address, name: str, zone: int) -> None:
        self.net = net
        self.idx = idx
        self.addr = addr
        self.name = name
        self.zone = zone
        self.group = 0
        self.down = False
        self.paused = False
        self.slow = 1.0
        self.clogged = False
        self.isolated = False
        """Its network interface is down: nothing in or out (flapping)."""
        self.clog_held: list[tuple[Host, Address, bytes]] = []
        self.epoch = 0
        """Bumped by every crash: streams of an older epoch are dead."""
        self.endpoint: SimEndpoint | None = None
        self.server: Any = None  # sim._streams.SimServer
        self.held: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._held_dropped = 0
        self.busy_until = 0.0
        self.resumed: asyncio.Event | None = None
        # dicts, not sets: iteration order must not depend on object ids
        self.tasks: dict[asyncio.Task[Any], None] = {}
        self.channels: dict[Any, None] = {}
        self.clock_base = 0.0
        self.clock_rate = 1.0
        self.clock_t0 = 0.0

    def __repr__(self) -> str:
        return f"Host({self.name} {self.addr[0]}:{self.addr[1]})"

    # --- running things "on" this host ---------------------------------------
    def admit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` as this machine would: now; after its CPU catches up
        (slow); or when it resumes (paused). The network checks ``down`` itself
        before admitting arrivals; timers still run on a down host so that the
        dying process can finish stopping."""
        if self.paused:
            if len(self.held) < self.net.config.held_max:
                self.held.append((fn, args))
            else:
                self._held_dropped += 1
                self.net.metrics.inc("held_dropped")
            return
        if self.slow > 1.0:
            loop = self.net.loop
            start = max(loop._now, self.busy_until)
            self.busy_until = start + self.net.config.cpu_cost * self.slow
            loop.call_at(self.busy_until, self._admit_late, fn, args)
            return
        fn(*args)

    def _admit_late(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if self.paused:
            self.held.append((fn, args))
            return
        fn(*args)

    def pause(self) -> None:
        """Freeze the machine: it runs nothing and sends nothing until resumed."""
        self.paused = True

    def resume(self) -> None:
        """Unfreeze: held arrivals and timers run now, in the order they came."""
        self.paused = False
        held, self.held = self.held, []
        for fn, args in held:
            self.admit(fn, *args)
        if self.resumed is not None:
            self.resumed.set()
            self.resumed = None

    def set_clock(self, rate: float, jump: float = 0.0) -> None:
        """Change the local clock's rate from now on (and jump it forward by
        ``jump`` >= 0 seconds). The clock stays monotonic."""
        if jump < 0:
            raise ValueError(f"clock jump must be >= 0 to keep the clock monotonic, got {jump}")
        now = self.net.loop._now
        self.clock_base = self.local_time(now) + jump
        self.clock_t0 = now
        self.clock_rate = rate

    def local_time(self, t: float) -> float:
        """This host's monotonic clock reading at virtual time ``t``."""
        return self.clock_base + self.clock_rate * (t - self.clock_t0)


class SimEndpoint:
    """A bound datagram endpoint on a simulated host (see the Runtime contract:
    sendto never raises for network trouble)."""

    __slots__ = ("_closed", "handler", "host")

    def __init__(self, host: Host, handler: DatagramHandler) -> None:
        self.host = host
        self.handler = handler
        self._closed = False

    @property
    def local_address(self) -> Address:
        return self.host.addr

    def sendto(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        self.host.net.send_datagram(self.host, bytes(data), addr)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.host.endpoint is self:
                self.host.endpoint = None


class Network:
    """All hosts and the links between them. Owns the packet randomness."""

    def __init__(self, loop: SimLoop, seed: int | str, config: NetConfig | None = None,
                 trace: Trace | None = None) -> None:
        self.loop = loop
        self.config = config or NetConfig()
        self.rng = random.Random(f"{seed}:network")
        self.trace = trace if trace is not None else Trace()
        self.metrics = Metrics()
        self.hosts: dict[Address, Host] = {}
        self.by_index: list[Host] = []
        self.cuts: set[tuple[int, int]] = set()
        """Directed (from group, to group) pairs that cannot talk."""
        self.loss = self.config.loss
        self.duplicate = self.config.duplicate
        self.reorder = self.config.reorder
        z = self.config.zones
        self._zone_latency = [[0.0] * z for _ in range(z)]
        for a in range(z):
            for b in range(z):
                if a == b:
                    self._zone_latency[a][b] = self.config.latency_local
                elif b < a:
                    self._zone_latency[a][b] = self._zone_latency[b][a]
                else:
                    self._zone_latency[a][b] = self.rng.uniform(
                        self.config.latency_min, self.config.latency_max
                    )
        self.sent = 0
        self.dropped = 0
        self.bytes_sent = 0
        self.errors: list[str] = []
        """Exceptions that escaped a handler (each is a bug in node code)."""

    # --- hosts ---------------------------------------------------------------
    def add_host(self, addr: Address, name: str | None = None) -> Host:
        """Create the host at ``addr`` (idempotent: returns the existing one)."""
        host = self.hosts.get(addr)
        if host is None:
            idx = len(self.by_index)
            zone = self.rng.randrange(self.config.zones)
            host = Host(self, idx, addr, name or f"{addr[0]}:{addr[1]}", zone)
            # Every monotonic clock has its own origin: code that compares
            # timestamps from different nodes is wrong, and this shows it.
            host.clock_base = self.rng.uniform(1_000.0, 1_000_000.0)
            self.hosts[addr] = host
            self.by_index.append(host)
        return host

    def latency(self, src: Host, dst: Host) -> float:
        """One sample of the one-way delay from ``src`` to ``dst``."""
        base = self._zone_latency[src.zone][dst.zone]
        return base + self.rng.expovariate(1.0) * base * self.config.jitter

    def blocked(self, src: Host, dst: Host) -> bool:
        """Whether a partition cuts the direction ``src`` -> ``dst``."""
        return bool(self.cuts) and (src.group, dst.group) in self.cuts

    # --- partitions ----------------------------------------------------------
    def partition(self, groups: list[list[Host]], one_way: bool = False) -> None:
        """Split hosts into ``groups`` (hosts not listed join the first group).
        Two-way: no group talks to another. One-way: traffic from the first
        group to the others is cut, the other direction still flows (so with
        victims in group 0 they cannot send; in group 1, cannot receive)."""
        for h in self.by_index:
            h.group = 0
        for gi, members in enumerate(groups):
            for h in members:
                h.group = gi
        self.cuts.clear()
        n = len(groups)
        for a in range(n):
            for b in range(n):
                if a != b and (not one_way or a == 0):
                    self.cuts.add((a, b))

    def heal(self) -> None:
        """Remove every partition."""
        self.cuts.clear()
        for h in self.by_index:
            h.group = 0

    def clog(self, host: Host) -> None:
        """Hold all datagrams to and from ``host`` until :meth:`unclog`."""
        host.clogged = True

    def unclog(self, host: Host) -> None:
        """Release ``host``: held datagrams go out now, with fresh latency."""
        host.clogged = False
        held, host.clog_held = host.clog_held, []
        for src, dst_addr, data in held:
            self.send_datagram(src, data, dst_addr, _retry=True)

    # --- datagrams (hot path) ------------------------------------------------
    def send_datagram(
        self, src: Host, data: bytes, dst_addr: Address, _retry: bool = False
    ) -> None:
        """Put one datagram on the wire from ``src`` to ``dst_addr``."""
        now = self.loop._now
        trace = self.trace
        if not _retry:
            self.sent += 1
            self.bytes_sent += len(data)
        dst = self.hosts.get(dst_addr)
        if dst is None:
            self.dropped += 1
            trace.packet(now, tr.DROP_NOHOST, src.idx, 0, data, 0.0)
            return
        if src.down or src.paused:
            self.dropped += 1
            trace.packet(now, tr.DROP_DOWN, src.idx, dst.idx, data, 0.0)
            return
        if (self.cuts and (src.group, dst.group) in self.cuts) or src.isolated or dst.isolated:
            self.dropped += 1
            trace.packet(now, tr.DROP_CUT, src.idx, dst.idx, data, 0.0)
            return
        if src.clogged or dst.clogged:
            (src if src.clogged else dst).clog_held.append((src, dst_addr, data))
            trace.packet(now, tr.HELD, src.idx, dst.idx, data, 0.0)
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            self.dropped += 1
            trace.packet(now, tr.DROP_LOSS, src.idx, dst.idx, data, 0.0)
            return
        due = now + self.latency(src, dst)
        if self.reorder and rng.random() < self.reorder:
            due += rng.random() * self.config.reorder_delay
        trace.packet(now, tr.SEND, src.idx, dst.idx, data, due)
        self.loop.call_at(due, self._arrive, dst, src.addr, data)
        if self.duplicate and rng.random() < self.duplicate:
            due2 = now + self.latency(src, dst)
            trace.packet(now, tr.DUP, src.idx, dst.idx, data, due2)
            self.loop.call_at(due2, self._arrive, dst, src.addr, data)

    def _arrive(self, dst: Host, src_addr: Address, data: bytes) -> None:
        if dst.down or dst.endpoint is None:
            self.dropped += 1
            self.trace.packet(self.loop._now, tr.DROP_ARRIVAL, 0, dst.idx, data, 0.0)
            return
        if dst.paused or dst.slow > 1.0:
            dst.admit(self._hand_over, dst, src_addr, data)
            return
        dst.endpoint.handler(data, src_addr)

    def _hand_over(self, dst: Host, src_addr: Address, data: bytes) -> None:
        ep = dst.endpoint
        if ep is None:
            self.dropped += 1
            return
        ep.handler(data, src_addr)

    # --- streams (HTTP and channels) -----------------------------------------
    def stream_delay(self, src: Host, dst: Host, packets: int = 1) -> float:
        """Delay of ``packets`` back-to-back stream packets from ``src`` to
        ``dst``: latency plus a retransmission delay for each loss."""
        delay = self.latency(src, dst) * packets
        if self.loss:
            rto = self.config.tcp_rto
            for _ in range(packets):
                while self.rng.random() < self.loss:
                    delay += rto
                    rto *= 2
        return delay

    def can_stream(self, a: Host, b: Host) -> bool:
        """Whether a TCP-like stream between ``a`` and ``b`` can make progress
        now (needs both directions; clogs and pauses stall it too)."""
        if self.cuts and ((a.group, b.group) in self.cuts or (b.group, a.group) in self.cuts):
            return False
        return not (a.clogged or b.clogged or a.paused or a.isolated or b.isolated)
