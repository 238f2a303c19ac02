"""What the simulator checks, while the run goes and at its end.

:class:`Observer` listens to every node's membership events and keeps, for each
live node, what it believes about every other node (one byte per pair), next to
the truth (which processes are up). From that it maintains, at O(1) per event:

* ``wrong``: how many (observer, member) beliefs disagree with the truth. A
  live member must be seen ``alive``; a crashed one ``dead``, ``left`` or not at
  all. ``wrong == 0`` is convergence.
* for every crashed node, how many survivors still think it is alive or
  suspect; the crash is *detected* when that reaches zero.
* every declaration of death about a node that is up, which is *false* unless
  the node or its accuser was under a fault (crashed and restarted, paused,
  slow, clogged, flapping, partitioned away) within ``window`` seconds before,
  or the network's loss was above :data:`LOSS_THRESHOLD` in that time, or the
  accuser's clock jumped forward within ``jump_window`` seconds before (see
  :meth:`Observer.clock_jumped`).

The invariants (:meth:`Observer.results`):

``no_errors``
    No exception escaped node code into the event loop or an HTTP handler.
``no_false_dead``
    See :data:`LOSS_THRESHOLD`.
``crashes_detected`` (liveness)
    Every node that crashed and stayed down is declared dead by every survivor
    within ``Config.detection_bound(N)`` of the later of its crash and the end
    of the fault phase.
``converges`` (liveness)
    Once faults stop, every live node sees exactly the live nodes as alive
    within ``Config.detection_bound(N) + Config.push_pull_period(N)``.

An invariant whose deadline lies beyond the end of the run and that has not
held yet is ``inconclusive``: the run was too short to tell. It does not fail
the run, and the report says so.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from mesh.config import Config
from mesh.gossip import EventKind, MemberEvent
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

UNKNOWN, ALIVE, SUSPECT, DEAD, LEFT = 0, 1, 2, 3, 4
_CODE = {0: ALIVE, 1: SUSPECT, 2: DEAD, 3: LEFT}  # Status int -> view code


@dataclass
class Invariant:
    name: str
    status: str  # "pass" | "fail" | "inconclusive"
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


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

    # --- results ---------------------------------------------------------------
    def detect_summary(self) -> dict[str, Any]:
        secs = sorted(d for _, _, d in self.detections)
        out: dict[str, Any] = {"count": len(secs), "undetected": len(self._pending_detect)}
        if secs:
            out.update(min=round(secs[0], 6), median=round(statistics.median(secs), 6),
                       max=round(secs[-1], 6))
        else:
            out.update(min=None, median=None, max=None)
        return out

    def results(self, mode: str, end: float, fault_end: float,
                errors: list[str]) -> list[Invariant]:
        """Every invariant, judged at virtual time ``end``."""
        out = [Invariant(
            "no_errors", "fail" if errors else "pass",
            f"{len(errors)} exception(s) escaped node code" + (f"; first: {errors[0]}"
                                                               if errors else ""),
        )]
        fd = self.false_dead
        out.append(Invariant(
            "no_false_dead", "fail" if fd else "pass",
            f"{len(fd)} live, reachable node(s) declared dead (loss <= {self.loss_threshold}); "
            f"{self.excused_dead} declaration(s) excused by a fault"
            + (f"; first: {fd[0]['member']} by {fd[0]['declared_by']} at {fd[0]['at']}s"
               if fd else ""),
        ))
        inv = self.invented
        out.append(Invariant(
            "no_invented_incarnation", "fail" if inv else "pass",
            f"{len(inv)} belief(s) in an incarnation a down node never had"
            + (f"; first: {inv[0]}" if inv else "")))
        if mode != "liveness":
            return out
        bound = self.config.detection_bound(self.n)
        # A survivor under a fault (cut off, paused, restarted) while a death
        # spreads may miss every retransmission of the rumour; it then detects
        # the crash itself, which SWIM bounds by one full round of its probes.
        slow_bound = bound + (self.n - 1) * self.config.probe_interval

        def bound_for(m: int, c: float, until: float) -> float:
            hit = any(s <= until and e >= c for i in range(self.n) if i != m
                      for s, e in self._impaired[i])
            return slow_bound if hit else bound

        late = [(name, c, d) for name, c, d in self.detections
                if c + d > max(c, fault_end) + bound_for(self.index[name], c, c + d)]
        waiting = sorted(self._pending_detect.items())
        overdue = [m for m, (c, _) in waiting
                   if max(c, fault_end) + bound_for(m, c, end) <= end]
        if late or overdue:
            what = [f"{n} after {d:.1f}s" for n, _, d in late[:3]]
            what += [f"{self.names[m]} never" for m in overdue[:3]]
            out.append(Invariant("crashes_detected", "fail",
                                 f"bound {bound:.1f}s ({slow_bound:.1f}s while a survivor "
                                 f"was under a fault) exceeded: " + ", ".join(what)))
        elif waiting:
            out.append(Invariant("crashes_detected", "inconclusive",
                                 f"{len(waiting)} crash(es) not yet detected by everyone; their "
                                 f"{bound:.1f}s bound ends after the run"))
        else:
            out.append(Invariant("crashes_detected", "pass",
                                 f"{len(self.detections)} crash(es), all detected by every "
                                 f"survivor within {bound:.1f}s"))
        cbound = bound + self.config.push_pull_period(self.n)
        deadline = fault_end + cbound
        if self.wrong == 0:
            converged_at = self.last_converged if self.last_converged is not None else 0.0
            since = max(0.0, converged_at - fault_end)
            ok = converged_at <= deadline
            out.append(Invariant(
                "converges", "pass" if ok else "fail",
                f"views agree with the truth {since:.1f}s after the fault phase "
                f"(bound {cbound:.1f}s)",
            ))
        elif end >= deadline:
            out.append(Invariant(
                "converges", "fail",
                f"{self.wrong} belief(s) still wrong {end - fault_end:.1f}s after the fault "
                f"phase ended (bound {cbound:.1f}s); e.g. {self.example_wrong()}",
            ))
        else:
            out.append(Invariant(
                "converges", "inconclusive",
                f"{self.wrong} belief(s) still wrong at the end; the {cbound:.1f}s bound ends "
                f"after the run",
            ))
        return out

    def example_wrong(self, limit: int = 3) -> str:
        """A few wrong beliefs, as text."""
        words = {UNKNOWN: "unknown", ALIVE: "alive", SUSPECT: "suspect", DEAD: "dead",
                 LEFT: "left"}
        out = []
        for o in range(self.n):
            view = self.views[o]
            if view is None:
                continue
            for m in range(self.n):
                if m != o and self._bad(m, view[m]):
                    truth = "up" if self.up[m] else "down"
                    out.append(f"{self.names[o]} sees {self.names[m]} {words[view[m]]} "
                               f"(it is {truth})")
                    if len(out) >= limit:
                        return "; ".join(out)
        return "; ".join(out)
