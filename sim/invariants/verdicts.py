"""The membership invariants, judged from an :class:`~sim.invariants.Observer`
at the end of a run (their definitions are in :mod:`sim.invariants`)."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from sim.invariants.record import ALIVE, DEAD, LEFT, SUSPECT, UNKNOWN, Invariant

if TYPE_CHECKING:
    from sim.invariants.membership import Observer


def detect_summary(obs: Observer) -> dict[str, Any]:
    secs = sorted(d for _, _, d in obs.detections)
    out: dict[str, Any] = {"count": len(secs), "undetected": len(obs._pending_detect)}
    if secs:
        out.update(min=round(secs[0], 6), median=round(statistics.median(secs), 6),
                   max=round(secs[-1], 6))
    else:
        out.update(min=None, median=None, max=None)
    return out

def judge(obs: Observer, mode: str, end: float, fault_end: float,
          errors: list[str]) -> list[Invariant]:
    """Every invariant, judged at virtual time ``end``."""
    out = [Invariant(
        "no_errors", "fail" if errors else "pass",
        f"{len(errors)} exception(s) escaped node code" + (f"; first: {errors[0]}"
                                                           if errors else ""),
    )]
    fd = obs.false_dead
    out.append(Invariant(
        "no_false_dead", "fail" if fd else "pass",
        f"{len(fd)} live, reachable node(s) declared dead (loss <= {obs.loss_threshold}); "
        f"{obs.excused_dead} declaration(s) excused by a fault"
        + (f"; first: {fd[0]['member']} by {fd[0]['declared_by']} at {fd[0]['at']}s"
           if fd else ""),
    ))
    inv = obs.invented
    out.append(Invariant(
        "no_invented_incarnation", "fail" if inv else "pass",
        f"{len(inv)} belief(s) in an incarnation a down node never had"
        + (f"; first: {inv[0]}" if inv else "")))
    if mode != "liveness":
        return out
    bound = obs.config.detection_bound(obs.n)
    # A survivor under a fault (cut off, paused, restarted) while a death
    # spreads may miss every retransmission of the rumour; it then detects
    # the crash itself, which SWIM bounds by one full round of its probes.
    slow_bound = bound + (obs.n - 1) * obs.config.probe_interval

    def bound_for(m: int, c: float, until: float) -> float:
        hit = any(s <= until and e >= c for i in range(obs.n) if i != m
                  for s, e in obs._impaired[i])
        return slow_bound if hit else bound

    late = [(name, c, d) for name, c, d in obs.detections
            if c + d > max(c, fault_end) + bound_for(obs.index[name], c, c + d)]
    waiting = sorted(obs._pending_detect.items())
    overdue = [m for m, (c, _) in waiting
               if max(c, fault_end) + bound_for(m, c, end) <= end]
    if late or overdue:
        what = [f"{n} after {d:.1f}s" for n, _, d in late[:3]]
        what += [f"{obs.names[m]} never" for m in overdue[:3]]
        out.append(Invariant("crashes_detected", "fail",
                             f"bound {bound:.1f}s ({slow_bound:.1f}s while a survivor "
                             f"was under a fault) exceeded: " + ", ".join(what)))
    elif waiting:
        out.append(Invariant("crashes_detected", "inconclusive",
                             f"{len(waiting)} crash(es) not yet detected by everyone; their "
                             f"{bound:.1f}s bound ends after the run"))
    else:
        out.append(Invariant("crashes_detected", "pass",
                             f"{len(obs.detections)} crash(es), all detected by every "
                             f"survivor within {bound:.1f}s"))
    cbound = bound + obs.config.push_pull_period(obs.n)
    deadline = fault_end + cbound
    if obs.wrong == 0:
        converged_at = obs.last_converged if obs.last_converged is not None else 0.0
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
            f"{obs.wrong} belief(s) still wrong {end - fault_end:.1f}s after the fault "
            f"phase ended (bound {cbound:.1f}s); e.g. {obs.example_wrong()}",
        ))
    else:
        out.append(Invariant(
            "converges", "inconclusive",
            f"{obs.wrong} belief(s) still wrong at the end; the {cbound:.1f}s bound ends "
            f"after the run",
        ))
    return out

def example_wrong(obs: Observer, limit: int = 3) -> str:
    """A few wrong beliefs, as text."""
    words = {UNKNOWN: "unknown", ALIVE: "alive", SUSPECT: "suspect", DEAD: "dead",
             LEFT: "left"}
    out = []
    for o in range(obs.n):
        view = obs.views[o]
        if view is None:
            continue
        for m in range(obs.n):
            if m != o and obs._bad(m, view[m]):
                truth = "up" if obs.up[m] else "down"
                out.append(f"{obs.names[o]} sees {obs.names[m]} {words[view[m]]} "
                           f"(it is {truth})")
                if len(out) >= limit:
                    return "; ".join(out)
    return "; ".join(out)
