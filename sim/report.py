"""Turn a :class:`~sim.runner.Result` into the JSON document or the readable
summary, and draw the progress bar."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from sim.runner import Result


def to_dict(result: Result, command: str) -> dict[str, Any]:
    """The ``--json`` document. Keys are stable; see docs/sim.md."""
    sc = result.scenario
    sim_s = result.sim_seconds or 1.0
    return {
        "scenario": sc.name,
        "mode": sc.mode,
        "seed": result.seed,
        "nodes": result.nodes,
        "sim_seconds": round(result.sim_seconds, 6),
        "wall_seconds": round(result.wall_seconds, 3),
        "events": result.events,
        "loop_callbacks": result.callbacks,
        "messages_sent": result.messages_sent,
        "messages_dropped": result.messages_dropped,
        "bytes_per_node_per_s": round(result.bytes_sent / (result.nodes * sim_s), 1),
        "detect_s": result.detect,
        "false_dead": len(result.false_dead),
        "false_dead_examples": result.false_dead[:5],
        "excused_dead": result.excused_dead,
        "join_converge_s": result.join_converge_s,
        "converge_s": result.converge,
        "faults": [f.to_dict() for f in result.faults],
        "invariants": [i.to_dict() for i in result.invariants],
        "ok": result.ok,
        "errors": result.errors[:5],
        "trace_digest": result.trace_digest,
        "command": command,
    }


def _fmt(x: float | None, unit: str = "s") -> str:
    return "-" if x is None else f"{x:.2f}{unit}"


def summary(result: Result, command: str) -> str:
    """A readable summary of the run."""
    sc = result.scenario
    d = result.detect
    lines = [
        f"scenario {sc.name} ({sc.mode}), seed {result.seed}: {result.nodes} nodes, "
        f"{result.sim_seconds:.0f} simulated seconds in {result.wall_seconds:.1f}s wall",
        f"  messages  {result.messages_sent} sent, {result.messages_dropped} dropped, "
        f"{result.bytes_sent / (result.nodes * (result.sim_seconds or 1)):.0f} B/node/s; "
        f"{result.events} trace events",
        f"  join      converged {_fmt(result.join_converge_s)} after the last node started",
        f"  faults    {len(result.faults)} ("
        + ", ".join(f"{k} {n}" for k, n in _count_kinds(result)) + ")",
        f"  detection {d['count']} crash(es): min {_fmt(d['min'])}, median {_fmt(d['median'])}, "
        f"max {_fmt(d['max'])}; {d['undetected']} not yet detected",
        f"  false dead {len(result.false_dead)} (excused by faults: {result.excused_dead})",
    ]
    conv = [c["converge_s"] for c in result.converge if c["converge_s"] is not None]
    if conv:
        lines.append(f"  converge  after {len(conv)} fault end(s): max {max(conv):.2f}s")
    lines.append("  invariants")
    for inv in result.invariants:
        mark = {"pass": "ok  ", "fail": "FAIL", "inconclusive": "??  "}[inv.status]
        lines.append(f"    {mark} {inv.name}: {inv.detail}")
    lines.append(f"  trace     {result.trace_digest}")
    if not result.ok:
        lines.append(f"FAILED with seed {result.seed}; reproduce with:\n  {command}")
    return "\n".join(lines)


def _count_kinds(result: Result) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for f in result.faults:
        if not f.skipped:
            counts[f.kind] = counts.get(f.kind, 0) + 1
    return sorted(counts.items())


class ProgressBar:
    """A one-line progress bar on a terminal stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._last = -1
        self._tty = self.stream.isatty()
        self._t0 = time.perf_counter()

    def __call__(self, t: float, total: float) -> None:
        frac = min(1.0, t / total) if total > 0 else 1.0
        # on a terminal redraw often; in a log file, one line per 10%
        steps = self.width if self._tty else 10
        filled = int(frac * steps)
        if filled == self._last and t < total:
            return
        self._last = filled
        wall = time.perf_counter() - self._t0
        bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
        line = f"  [{bar}] {t:6.0f}/{total:.0f} simulated s, {wall:5.1f}s wall"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if t >= total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
