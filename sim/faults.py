"""Fault kinds, the plan of a run's faults, and the injector that applies them.

Kinds (``FaultSpec.kind``):

==========  =====================================================================
crash       ``Node.stop()``: the process dies and its state is lost. With a
            ``duration`` it restarts after it: a new ``Node``, same name and
            address, fresh state and randomness (``restart`` is the same with a
            default duration of 10 s).
pause       The node keeps its address but runs nothing (SIGSTOP, a long GC):
            its timers do not fire and arrivals are held until it resumes.
slow        Every event on the node costs ``factor`` (default 20) times
            ``NetConfig.cpu_cost`` of a serial CPU, so it lags under load.
skew        The node's monotonic clock runs at ``rate`` (default drawn in
            [0.8, 1.25]) and jumps forward by ``jump`` seconds.
partition   The victims (``fraction`` of the cluster, default half) are cut off
            from the rest. ``one_way = "in"`` cuts only traffic to them,
            ``"out"`` only traffic from them.
clog        The victims' interfaces hold every datagram until unclogged
            (FoundationDB's clogging): traffic arrives late and in a burst.
swizzle     FoundationDB's swizzle-clog: clog the victims one at a time,
            ``step`` seconds apart (default 0.5), hold ``duration``, then unclog
            them one at a time in a random order.
flap        The victims' network goes down and up ``times`` times (default 4)
            with ``period`` seconds per cycle (default 6).
network     Change the whole network's ``loss``, ``duplicate`` and ``reorder``
            for ``duration`` (a lossy phase).
==========  =====================================================================

Victims are drawn from the seed when a fault starts, among nodes that are up
and under no other node fault, and never so many that fewer than 60% of the
cluster is healthy (a fault that finds no room is skipped and reported).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sim.scenario import FaultSpec, Scenario

if TYPE_CHECKING:
    from sim.runner import Simulation


_HEALTHY_MIN = 0.6
"""Fraction of the cluster never touched at once by node faults."""


@dataclass
class FaultRecord:
    """What actually happened for one fault, for the report."""

    label: str
    kind: str
    start: float
    end: float | None = None
    victims: list[str] = field(default_factory=list)
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"fault": self.label, "kind": self.kind, "start": round(self.start, 6),
                             "end": None if self.end is None else round(self.end, 6)}
        if self.skipped:
            d["skipped"] = self.skipped
        else:
            d["victims"] = len(self.victims)
        return d


# --- planning ---------------------------------------------------------------
def plan(scenario: Scenario, rng: random.Random) -> list[FaultSpec]:
    """The full fault schedule: the scenario's explicit faults plus its rolling
    ones drawn from ``rng``, sorted by start time (stable for equal times)."""
    start, end = scenario.window()
    span = max(0.0, end - start)
    out = list(scenario.faults)
    roll = scenario.rolling

    def times(n: int) -> list[float]:
        return sorted(start + rng.random() * span for _ in range(n))

    for t in times(roll.get("crash", 0)):
        out.append(FaultSpec("crash", t, None, count=1))
    for t in times(roll.get("restart", 0)):
        out.append(FaultSpec("crash", t, rng.uniform(3.0, 15.0), count=1))
    for t in times(roll.get("pause", 0)):
        out.append(FaultSpec("pause", t, rng.uniform(2.0, 12.0), count=1))
    for t in times(roll.get("slow", 0)):
        out.append(FaultSpec("slow", t, rng.uniform(5.0, 20.0), count=1,
                             params={"factor": rng.choice([5.0, 20.0, 50.0])}))
    for t in times(roll.get("skew", 0)):
        out.append(FaultSpec("skew", t, None, count=1,
                             params={"rate": rng.uniform(0.8, 1.25),
                                     "jump": rng.uniform(0.0, 30.0)}))
    # Partitions never overlap: each gets its own slot of the window.
    parts: list[str | None] = [None] * roll.get("partition", 0)
    parts += [rng.choice(["in", "out"]) for _ in range(roll.get("one_way", 0))]
    rng.shuffle(parts)
    if parts:
        slot = span / len(parts)
        for i, way in enumerate(parts):
            dur = min(20.0, max(1.0, rng.uniform(0.3, 0.7) * slot))
            t = start + i * slot + rng.random() * max(0.0, slot - dur)
            params: dict[str, Any] = {"one_way": way} if way else {}
            out.append(FaultSpec("partition", t, dur, fraction=rng.uniform(0.1, 0.5),
                                 params=params))
    if roll.get("swizzle", 0):
        t = start + rng.random() * span * 0.5
        out.append(FaultSpec("swizzle", t, rng.uniform(2.0, 6.0), count=roll["swizzle"],
                             params={"step": 0.5}))
    for t in times(roll.get("flap", 0)):
        period = rng.uniform(2.0, 8.0)
        n = rng.randint(3, 6)
        out.append(FaultSpec("flap", t, None, count=1, params={"period": period, "times": n}))
    out.sort(key=lambda f: f.at)
    return out


# --- injection --------------------------------------------------------------
class Injector:
    """Applies a plan of faults to a running :class:`~sim.runner.Simulation`."""

    def __init__(self, sim: Simulation, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.records: list[FaultRecord] = []
        self.busy: set[int] = set()
        """Nodes under a node fault right now (never iterated unsorted)."""
        self.partition_active = False
        self._counter = 0
        sc = sim.scenario
        self.liveness = sc.mode == "liveness"
        self.window_end = sc.window()[1]

    def schedule(self, specs: list[FaultSpec]) -> None:
        loop = self.sim.loop
        for spec in specs:
            loop.call_at(spec.at, self.start, spec)

    # --- helpers ---------------------------------------------------------------
    def _clip(self, spec: FaultSpec, duration: float | None) -> float | None:
        """In liveness mode every fault that can end is over by the window end."""
        if not self.liveness or spec.kind in ("skew",):
            return duration
        if spec.kind == "crash" and duration is None:
            return None
        end = spec.at + (duration if duration is not None else math.inf)
        return max(0.0, min(end, self.window_end) - spec.at)

    def _victims(self, spec: FaultSpec, rec: FaultRecord, node_fault: bool = True) -> list[int]:
        sim = self.sim
        n = sim.n
        if spec.nodes:
            idx = [sim.index[name] for name in spec.nodes if name in sim.index]
            return [i for i in idx if sim.is_up(i) and i not in self.busy]
        want = spec.count if spec.count is not None else max(
            1, round((spec.fraction if spec.fraction is not None else 0.5) * n)
        )
        eligible = [i for i in range(n) if sim.is_up(i) and i not in self.busy]
        if node_fault:
            untouched = sum(1 for i in range(n) if sim.is_up(i) and i not in self.busy)
            room = untouched - math.ceil(_HEALTHY_MIN * n)
            want = min(want, room)
        want = min(want, len(eligible))
        if want <= 0:
            rec.skipped = "no room: too many nodes down or under other faults"
            return []
        return sorted(self.rng.sample(eligible, want))

    def _end_later(self, delay: float | None, fn: Callable[[], None]) -> None:
        if delay is None:
            return
        self.sim.loop.call_at(self.sim.loop.time() + delay, fn)

    # --- start -----------------------------------------------------------------
    def start(self, spec: FaultSpec) -> None:
        sim = self.sim
        now = sim.loop.time()
        self._counter += 1
        kind = "crash" if spec.kind == "restart" else spec.kind
        duration = spec.duration
        if spec.kind == "restart" and duration is None:
            duration = 10.0
        rec = FaultRecord(f"{kind}#{self._counter}", kind, now)
        self.records.append(rec)
        if self.liveness and now >= self.window_end and kind not in ("skew",):
            rec.skipped = "starts after the fault phase (liveness mode)"
            return
        handler = getattr(self, f"_start_{kind}")
        handler(spec, rec, self._clip(spec, duration))
        names = " ".join(sim.hosts[i].name for i in sorted(sim.index[v] for v in rec.victims))
        sim.trace.note(now, "fault", rec.label, rec.skipped or "start", names)

    def _finish(self, rec: FaultRecord, victims: list[int], impaired: bool = True) -> None:
        sim = self.sim
        now = sim.loop.time()
        rec.end = now
        for i in victims:
            self.busy.discard(i)
            if impaired:
                sim.observer.impair_end(i, now)
        sim.observer.fault_ended(rec.label, now)
        sim.trace.note(now, "fault", rec.label, "end")

    def _take(self, victims: list[int], rec: FaultRecord, impaired: bool = True) -> None:
        now = self.sim.loop.time()
        for i in victims:
            self.busy.add(i)
            rec.victims.append(self.sim.hosts[i].name)
            if impaired:
                self.sim.observer.impair_start(i, now)

    def _start_crash(self, spec: FaultSpec, rec: FaultRecord, duration: float | None) -> None:
        victims = self._victims(spec, rec)
        self._take(victims, rec)
        for i in victims:
            self.sim.crash(i)
        if duration is None:
            # Nothing will end this fault: convergence is measured from now.
            rec.end = rec.start
            for i in victims:
                self.busy.discard(i)
            self.sim.observer.fault_ended(rec.label, rec.start)
            return

        def restart() -> None:
            for i in victims:
                self.sim.restart(i)
            self._finish(rec, victims)

        self._end_later(duration, restart)

    def _host_fault(self, spec: FaultSpec, rec: FaultRecord, duration: float | None,
                    on: Callable[[Any], None], off: Callable[[Any], None],
                    impaired: bool = True) -> None:
        victims = self._victims(spec, rec)
        self._take(victims, rec, impaired)
        hosts = self.sim.hosts
        for i in victims:
            on(hosts[i])

        def end() -> None:
            for i in victims:
                off(hosts[i])
            self._finish(rec, victims, impaired)

        self._end_later(duration, end)

    def _start_pause(self, spec: FaultSpec, rec: FaultRecord, duration: float | None) -> None:
        self._host_fault(spec, rec, duration, lambda h: h.pause(), lambda h: h.resume())

    def _start_slow(self, spec: FaultSpec, rec: FaultRecord, duration: float | None) -> None:
        factor = float(spec.params.get("factor", 20.0))

        def on(h: Any) -> None:
            h.slow = factor

        def off(h: Any) -> None:
            h.slow = 1.0

        self._host_fault(spec, rec, duration, on, off)

    def _start_skew(self, spec: FaultSpec, rec: FaultRecord, duration: float | None) -> None:
        rate = float(spec.params.get("rate", self.rng.uniform(0.8, 1.25)))
        jump = float(spec.params.get("jump", 0.0))
        self._host_fault(spec, rec, duration, lambda h: h.set_clock(rate, jump),
                         lambda h: h.set_clock(1.0), impaired=False)
        for i in [self.sim.index[v] for v in rec.victims]:
            self.busy.discard(i)  # a skewed node may take other faults too
            if jump > 0:
                self.sim.observer.clock_jumped(i, self.sim.loop.time())

    def _start_clog(self, spec: FaultSpec, rec: FaultRecord, duration: float | None) -> None:
        net = self.sim.net
        self._host_fault(spec, rec, duration, net.clog, net.unclog)

    def _start_partition(self, spec: FaultSpec, rec: FaultRecord,
                         duration: float | None) -> None:
        if self.partition_active:
            rec.skipped = "another partition is active"
            return
        sim = self.sim
        victims = self._victims(spec, rec, node_fault=False)
        if not victims:
            return
        self.partition_active = True
        now = sim.loop.time()
        for i in victims:
            rec.victims.append(sim.hosts[i].name)
            sim.observer.impair_start(i, now)
        vs = set(victims)
        cut = [sim.hosts[i] for i in victims]
        rest = [h for h in sim.hosts if h.idx not in vs]
        way = spec.params.get("one_way")
        if way == "in":
            sim.net.partition([rest, cut], one_way=True)
        elif way == "out":
            sim.net.partition([cut, rest], one_way=True)
        else:
            sim.net.partition([rest, cut])

        def heal() -> None:
            sim.net.heal()
            self.partition_active = False
            rec.end = sim.loop.time()
            for i in victims:
                sim.observer.impair_end(i, rec.end)
            sim.observer.fault_ended(rec.label, rec.end)
            sim.trace.note(rec.end, "fault", rec.label, "end")

        self._end_later(duration, heal)

    def _start_swizzle(self, spec: FaultSpec, rec: FaultRecord,
                       duration: float | None) -> None:
        sim = self.sim
        victims = self._victims(spec, rec)
        self._take(victims, rec)
        step = float(spec.params.get("step", 0.5))
        hold = duration if duration is not None else 5.0
        loop = sim.loop
        now = loop.time()
        for k, i in enumerate(victims):
            loop.call_at(now + k * step, sim.net.clog, sim.hosts[i])
        order = list(victims)
        self.rng.shuffle(order)
        t_unclog = now + len(victims) * step + hold
        for k, i in enumerate(order):
            loop.call_at(t_unclog + k * step, sim.net.unclog, sim.hosts[i])
        loop.call_at(t_unclog + len(order) * step, self._finish, rec, victims)

    def _start_flap(self, spec: FaultSpec, rec: FaultRecord, duration: float | None) -> None:
        sim = self.sim
        victims = self._victims(spec, rec)
        self._take(victims, rec)
        period = float(spec.params.get("period", 6.0))
        times = int(spec.params.get("times", 4))
        loop = sim.loop
        now = loop.time()
        end = now + period * times
        if duration is not None:
            end = min(end, now + duration)

        def set_iso(flag: bool) -> None:
            for i in victims:
                sim.hosts[i].isolated = flag

        t = now
        while t < end:
            loop.call_at(t, set_iso, True)
            loop.call_at(min(end, t + period / 2), set_iso, False)
            t += period
        loop.call_at(end, self._finish, rec, victims)

    def _start_network(self, spec: FaultSpec, rec: FaultRecord,
                       duration: float | None) -> None:
        sim = self.sim
        net = sim.net
        before = (net.loss, net.duplicate, net.reorder)
        net.loss = float(spec.params.get("loss", net.loss))
        net.duplicate = float(spec.params.get("duplicate", net.duplicate))
        net.reorder = float(spec.params.get("reorder", net.reorder))
        sim.observer.loss_changed(net.loss, sim.loop.time())

        def end() -> None:
            net.loss, net.duplicate, net.reorder = before
            sim.observer.loss_changed(net.loss, sim.loop.time())
            self._finish(rec, [])

        self._end_later(duration, end)
