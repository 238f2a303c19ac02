"""A tiny discrete-event network that drives sans-IO Membership cores directly.

No asyncio and no wire codec: just the state machines, a heap of timed
deliveries and a seeded rng, so hypothesis can run many clusters quickly.
(The full simulator in ``sim/`` runs whole nodes; this is for unit tests of
the core alone.)
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable

import msgpack

from mesh.config import Config
from mesh.gossip import Membership, PushPull, Send, Status

Addr = tuple[str, int]


class Cluster:
    def __init__(
        self,
        n: int,
        seed: int = 0,
        config: Config | None = None,
        latency: tuple[float, float] = (0.001, 0.01),
        drop: Callable[[str, str, float], bool] | None = None,
    ) -> None:
        self.config = config or Config()
        self.rng = random.Random(seed)
        self.latency = latency
        self.drop = drop or (lambda src, dst, now: False)
        self.now = 0.0
        self.nodes: dict[str, Membership] = {}
        self.addr_of: dict[str, Addr] = {}
        self.name_at: dict[Addr, str] = {}
        self.crashed: set[str] = set()
        self._heap: list[tuple[float, int, str, object]] = []
        self._ticks: dict[str, float] = {}  # each node's latest scheduled tick
        self._n = 0
        names = [f"n{i:03d}" for i in range(n)]
        for i, name in enumerate(names):
            self.add(name, ("10.0.0.1", 7000 + i))
        # Everyone joins through the first node.
        for name in names[1:]:
            self.push_pull(name, names[0], join=True)

    def add(self, name: str, addr: Addr, incarnation: int = 0) -> Membership:
        m = Membership(name, addr, self.config, random.Random(f"{name}:{self.rng.random()}"),
                       self.now, incarnation=incarnation)
        self.nodes[name] = m
        self.addr_of[name] = addr
        self.name_at[addr] = name
        self.crashed.discard(name)
        self._schedule_tick(name)
        return m

    def push_pull(self, a: str, b: str, join: bool = False) -> None:
        """``a`` exchanges state with ``b`` (as the driver does over HTTP)."""
        ma, mb = self.nodes[a], self.nodes[b]
        # through msgpack, as over HTTP: tables arrive as lists of lists
        sa, sb = (msgpack.unpackb(msgpack.packb(m.local_state())) for m in (ma, mb))
        mb.merge_remote(sa, self.now)
        ma.merge_remote(sb, self.now, bootstrap=join)
        # A large table is merged in slices, from the next tick, which the
        # driver asks for at once after serving a push-pull.
        self._reschedule(a)
        self._reschedule(b)

    def _reschedule(self, name: str) -> None:
        m = self.nodes[name]
        nd = m.next_deadline()
        if self._ticks.get(name) != nd or m.merges:  # merge work: one slice per tick
            self._ticks[name] = nd
            self._push(nd, name, "tick")

    def crash(self, name: str) -> None:
        self.crashed.add(name)

    def _push(self, when: float, name: str, item: object) -> None:
        self._n += 1
        heapq.heappush(self._heap, (when, self._n, name, item))

    def _schedule_tick(self, name: str) -> None:
        self._push(self.nodes[name].next_deadline(), name, "tick")

    def _deliver(self, src: str, effects: list) -> None:
        for eff in effects:
            if isinstance(eff, Send):
                dst = self.name_at.get(eff.addr)
                if dst is None or self.drop(src, dst, self.now):
                    continue
                delay = self.rng.uniform(*self.latency)
                self._push(self.now + delay, dst, (src, eff.body))
            elif isinstance(eff, PushPull):
                dst = self.name_at.get(eff.addr)
                ok = dst is not None and dst not in self.crashed
                if ok and not self.drop(src, dst, self.now):
                    self.push_pull(src, dst, join=eff.join)

    def run(self, until: float) -> None:
        ticks_pending = self._ticks
        while self._heap and self._heap[0][0] <= until:
            when, _, name, item = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if name in self.crashed:
                continue
            m = self.nodes[name]
            if item == "tick":
                if ticks_pending.get(name, -1) > when:
                    continue
                out = m.tick(self.now)
            else:
                src, body = item
                out = m.receive(msgpack.unpackb(body), self.addr_of[src], self.now)
            self._deliver(name, out)
            self._reschedule(name)
        self.now = until

    def status(self, observer: str, target: str) -> Status | None:
        m = self.nodes[observer].get(target)
        return None if m is None else m.status

    def live(self) -> list[str]:
        return sorted(n for n in self.nodes if n not in self.crashed)
