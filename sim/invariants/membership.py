"""The :class:`Observer`: every node's beliefs about every node, against the
truth, kept at O(1) per membership event (see :mod:`sim.invariants`)."""

from __future__ import annotations

import math
from typing import Any

from mesh.config import Config
from mesh.gossip import EventKind, MemberEvent
from sim.invariants import verdicts
from sim.invariants.record import _CODE, ALIVE, SUSPECT, Invariant
from sim.trace import Trace

LOSS_THRESHOLD = 0.15
"""The highest uniform datagram loss at which no live, reachable node may be
declared dead (``no_false_dead``); above it, declarations are excused.

Measured with ``python -m sim.calibrate --seeds 10 --duration 120`` (50 nodes,
nothing but uniform loss, 10 seeds per level, 120 simulated seconds each):

====  ==================================
loss  runs with a live node declared dead
====  ==================================
5%    0 / 10
10%   0 / 10
15%   0 / 10
20%   2 / 10
25%   3 / 10
30%   5 / 10
====  ==================================

SWIM needs the direct probe *and* all ``indirect_checks`` indirect probes to
fail, and then every refutation to be lost for a whole suspicion timeout, so it
tolerates a lot of loss before it errs; 15% is the last level that was clean.
"""


class Observer:
    """Beliefs of every node about every node, against the truth."""

    def __init__(self, names: list[str], config: Config, trace: Trace,
                 loss_threshold: float = LOSS_THRESHOLD) -> None:
        n = len(names)
        self.n = n
        self.names = names
        self.index = {name: i for i, name in enumerate(names)}
        self.config = config
        self.trace = trace
        self.loss_threshold = loss_threshold
        self.window = config.detection_bound(n) + (
            config.awareness_max_multiplier * config.probe_interval
        )
        """How long a fault keeps excusing death declarations about its victims."""
        self.jump_window = config.awareness_max_multiplier * config.probe_interval
        """How long a forward clock jump excuses its node's own declarations."""
        self._jumps: list[list[float]] = [[] for _ in range(n)]
        self.now = 0.0
        self.up = bytearray(n)
        self.gen = [0] * n
        self.views: list[bytearray | None] = [None] * n
        self.wrong = 0
        self._pending_detect: dict[int, list[float]] = {}  # m -> [crash_t, undetected]
        self.detections: list[tuple[str, float, float]] = []  # (name, crash_t, seconds)
        self.detect_interrupted = 0
        self._impaired: list[list[list[float]]] = [[] for _ in range(n)]
        self._lossy: list[list[float]] = []
        self._episodes: set[tuple[int, int]] = set()
        self.false_dead: list[dict[str, Any]] = []
        self.excused_dead = 0
        self._pending_converge: list[tuple[str, float]] = []
        self.converge: list[dict[str, Any]] = []
        self.events = 0
        self.final_inc: dict[int, int] = {}
        """The last incarnation each node that is down had itself."""
        self.invented: list[str] = []
        """Beliefs in an incarnation of a down node higher than it ever had."""

    # --- truth ---------------------------------------------------------------
    def _bad(self, m: int, code: int) -> int:
        if self.up[m]:
            return code != ALIVE
        return code in (ALIVE, SUSPECT)

    def node_up(self, i: int, t: float) -> int:
        """Node ``i`` starts (or restarts) with an empty view. Returns its
        generation, which the listener must pass back with each event."""
        self.now = t
        if self.up[i]:
            raise RuntimeError(f"{self.names[i]} is already up")
        self.final_inc.pop(i, None)
        if self._pending_detect.pop(i, None) is not None:
            self.detect_interrupted += 1  # restarted before everyone noticed
        # truth flips: others' beliefs about i are now judged against "alive"
        for o in range(self.n):
            view = self.views[o]
            if view is not None and o != i:
                v = view[i]
                self.wrong += (v != ALIVE) - (v in (ALIVE, SUSPECT))
        self.up[i] = 1
        self.gen[i] += 1
        # the new observer knows nobody yet: every other live node is unknown
        self.views[i] = bytearray(self.n)
        self.wrong += sum(self.up) - 1
        return self.gen[i]

    def node_down(self, i: int, t: float, incarnation: int | None = None) -> None:
        """Node ``i``'s process died; ``incarnation`` is the last it had itself."""
        self.now = t
        if not self.up[i]:
            return
        if incarnation is not None:
            self.final_inc[i] = incarnation
        view = self.views[i]
        assert view is not None
        before = self.wrong
        # i stops being an observer
        for m in range(self.n):
            if m != i:
                self.wrong -= self._bad(m, view[m])
        for m, rec in list(self._pending_detect.items()):
            if view[m] == ALIVE or view[m] == SUSPECT:
                rec[1] -= 1
                if rec[1] == 0:
                    self._detected(m, t)
        self.views[i] = None
        # truth flips to down
        undetected = 0
        for o in range(self.n):
            v2 = self.views[o]
            if v2 is not None:
                v = v2[i]
                self.wrong += (v in (ALIVE, SUSPECT)) - (v != ALIVE)
                undetected += v in (ALIVE, SUSPECT)
        self.up[i] = 0
        self._pending_detect[i] = [t, undetected]
        if undetected == 0:
            self._detected(i, t)
        if self.wrong == 0 and before:
            self._converged(t)

    def _detected(self, m: int, t: float) -> None:
        crash_t, _ = self._pending_detect.pop(m)
        self.detections.append((self.names[m], crash_t, t - crash_t))

    # --- faults --------------------------------------------------------------
    def impair_start(self, i: int, t: float) -> None:
        self._impaired[i].append([t, math.inf])

    def impair_end(self, i: int, t: float) -> None:
        for span in self._impaired[i]:
            if span[1] == math.inf:
                span[1] = t

    def loss_changed(self, loss: float, t: float) -> None:
        """The network's loss is now ``loss``."""
        open_span = self._lossy and self._lossy[-1][1] == math.inf
        if loss > self.loss_threshold and not open_span:
            self._lossy.append([t, math.inf])
        elif loss <= self.loss_threshold and open_span:
            self._lossy[-1][1] = t

    def clock_jumped(self, i: int, t: float) -> None:
        """Node ``i``'s monotonic clock jumped forward at ``t``. Every timer it
        skipped fires at the node's next wakeup, at most ``jump_window`` (its
        longest probe period) later: a suspicion that had seconds left runs
        out at once, as if the node had been paused that long. Its own
        declarations until then are excused; nobody else's are, and neither
        are its later ones."""
        self._jumps[i].append(t)

    def _jumped(self, i: int, t: float) -> bool:
        w = self.jump_window
        return any(j <= t <= j + w for j in self._jumps[i])

    def _excused(self, i: int, t: float) -> bool:
        w = self.window
        return any(s <= t <= e + w for s, e in self._impaired[i])

    def _lossy_at(self, t: float) -> bool:
        w = self.window
        return any(s <= t <= e + w for s, e in self._lossy)

    def fault_ended(self, label: str, t: float) -> None:
        """A fault is over: measure how long until the views converge."""
        if self.wrong == 0:
            self.converge.append({"after": label, "at": round(t, 6), "converge_s": 0.0})
        else:
            self._pending_converge.append((label, t))

    def _converged(self, t: float) -> None:
        for label, t_end in self._pending_converge:
            self.converge.append(
                {"after": label, "at": round(t_end, 6), "converge_s": round(t - t_end, 6)}
            )
        self._pending_converge.clear()
        self.last_converged = t

    last_converged: float | None = None

    # --- events (hot) ----------------------------------------------------------
    def listener(self, o: int, gen: int, now: Any) -> Any:
        """The callback to register on node ``o`` in its generation ``gen``;
        ``now`` reads virtual time."""

        def on_event(ev: MemberEvent) -> None:
            self.on_event(o, gen, ev, now())

        return on_event

    def on_event(self, o: int, gen: int, ev: MemberEvent, t: float) -> None:
        if gen != self.gen[o] or not self.up[o]:
            return  # a dying process still talking
        self.now = t
        self.events += 1
        member = ev.member
        m = self.index.get(member.name)
        if m is None:
            return
        code = _CODE[int(member.status)]
        before = self.wrong
        self.trace.event(t, o, ev.kind.value, m, member.incarnation)
        view = self.views[o]
        assert view is not None
        old = view[m]
        view[m] = code
        if self.up[m]:
            self.wrong += (code != ALIVE) - (old != ALIVE)
            if ev.kind is EventKind.DEAD:
                self._declared_dead(o, m, member.incarnation, t)
        else:
            was = old in (ALIVE, SUSPECT)
            now_bad = code in (ALIVE, SUSPECT)
            last = self.final_inc.get(m)
            if now_bad and last is not None and member.incarnation > last:
                # only a node raises its own incarnation, and this one is down
                self.invented.append(f"{self.names[o]} believes {self.names[m]} "
                                     f"{ev.kind.value} at incarnation {member.incarnation} "
                                     f"(it had {last}) at {t:.2f}s")
            self.wrong += now_bad - was
            rec = self._pending_detect.get(m)
            if rec is not None and was != now_bad:
                rec[1] += 1 if now_bad else -1
                if rec[1] == 0:
                    self._detected(m, t)
        if self.wrong == 0 and before:
            self._converged(t)

    def _declared_dead(self, o: int, m: int, inc: int, t: float) -> None:
        key = (m, inc)
        if key in self._episodes:
            return  # the same declaration, spreading
        self._episodes.add(key)
        if self._excused(m, t) or self._excused(o, t) or self._lossy_at(t) \
                or self._jumped(o, t):
            self.excused_dead += 1
            return
        self.false_dead.append({
            "at": round(t, 6), "declared_by": self.names[o], "member": self.names[m],
            "incarnation": inc,
        })

    # --- results (judged in sim.invariants.verdicts) ----------------------------
    def detect_summary(self) -> dict[str, Any]:
        return verdicts.detect_summary(self)

    def results(self, mode: str, end: float, fault_end: float,
                errors: list[str]) -> list[Invariant]:
        """Every invariant, judged at virtual time ``end``."""
        return verdicts.judge(self, mode, end, fault_end, errors)

    def example_wrong(self, limit: int = 3) -> str:
        """A few wrong beliefs, as text."""
        return verdicts.example_wrong(self, limit)
