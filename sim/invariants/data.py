"""The ``data`` workload's invariants: large values through crashes.

Values are *self-checking* (:func:`sealed`): 32 bytes of SHA-256, then the
body they cover. Whoever holds one can tell, alone, whether it is whole: a
value used before its last chunk arrived, or spliced from two sources, or
cut short, fails :func:`whole`. The task functions of the workload check
every input they are given and report a torn one here (:func:`torn`); the
client checks every value it receives against the digest it computed itself.

Verdicts (:meth:`DataChecks.invariants`):

* ``data_resolve``: every future resolved by the end of its round (an
  unresolved one while a fault ended less than the settle time before the end
  is ``inconclusive``, as in the ``tasks`` workload);
* ``data_right_values``: each resolved once, finished, with the value the
  client computed itself (SHA-256 of a large value, equality of a small one);
* ``data_whole_inputs``: no task was ever handed a torn value, and no client
  received one: a partly received value is never used;
* ``data_not_lost``: no future resolved with an error (``lost``, a failed
  recompute, a failed transfer): a value a graph still needs is kept, taken
  up from another replica or computed again;
* ``data_freed``: once every key is released and the run is quiet, no node
  that is up holds a value in its store (memory or spill), in its data plane,
  in a transfer in flight, or a task, a result or a spec in its exec tables.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sim.invariants.record import Invariant

__all__ = ["DataChecks", "TornValue", "sealed", "torn", "whole"]

_TORN: list[str] = []
"""Torn inputs the task functions saw (they run in-process; reset per run)."""


class TornValue(Exception):
    """A task was handed a value that is not whole."""


def sealed(body: bytes) -> bytes:
    """``body`` behind its own SHA-256: a value that can check itself."""
    return hashlib.sha256(body).digest() + body


def whole(value: Any) -> bool:
    return (type(value) is bytes and len(value) > 32
            and hashlib.sha256(memoryview(value)[32:]).digest() == value[:32])


def torn(where: str, value: Any) -> TornValue:
    """Record a torn input of task ``where``; the error to raise."""
    size = len(value) if isinstance(value, bytes | bytearray) else -1
    _TORN.append(f"{where}: a torn input of {size} bytes")
    return TornValue(_TORN[-1])


def digest(value: Any) -> str:
    return hashlib.sha256(value).hexdigest()[:16] if isinstance(value, bytes) else repr(value)


@dataclass
class Expect:
    key: str
    large: bool
    value: Any
    """A large value's SHA-256 (hex, 16), or the small value itself."""
    resolved: int = 0


class DataChecks:
    """What the clients saw; judged at the end of the run."""

    def __init__(self) -> None:
        _TORN.clear()
        self.expect: dict[str, Expect] = {}
        self.wrong: list[str] = []
        self.lost: list[str] = []
        self.torn_received: list[str] = []
        self.unresolved: list[str] = []
        self.right = 0
        self.large_right = 0

    def expecting(self, key: str, value: Any) -> Expect:
        large = isinstance(value, bytes)
        e = self.expect[key] = Expect(key, large, digest(value) if large else value)
        return e

    def resolved(self, f: Any, e: Expect) -> None:
        e.resolved += 1
        if e.resolved > 1:
            self.wrong.append(f"{e.key} resolved {e.resolved} times")
            return
        if f.status != "finished":
            exc = f.exception() if f.status == "error" else None
            self.lost.append(f"{e.key}: {f.status}: {type(exc).__name__}: {exc}")
            return
        got = f.result()
        if e.large:
            if not whole(got):
                self.torn_received.append(f"{e.key}: the client received a torn value "
                                          f"of {len(got) if isinstance(got, bytes) else -1} "
                                          "bytes")
                return
            got = digest(got)
        if got != e.value:
            self.wrong.append(f"{e.key}: resolved to {got!r}, expected {e.value!r}")
            return
        self.right += 1
        self.large_right += e.large

    def invariants(self, settled: bool, leftovers: list[str] | None, quiet: bool,
                   why_inconclusive: str, safety: bool = False) -> list[Invariant]:
        """``settled``: the last fault ended long enough before the end;
        ``leftovers``: what nodes still hold (None: a client did not finish);
        ``quiet``: the last release was long enough before the end;
        ``safety``: faults roll to the end (a round that timed out while they
        did is not a verdict: liveness is not promised then)."""
        n = len(self.expect)
        never = sorted(k for k, e in self.expect.items() if e.resolved == 0)
        gave_up = [k for k in never if k in self.unresolved]
        status = ("pass" if not never else "fail" if settled or (gave_up and not safety)
                  else "inconclusive")
        out = [Invariant("data_resolve", status,
                         f"{n - len(never)} of {n} futures resolved"
                         + (f"; never: {', '.join((gave_up or never)[:3])}" if never else "")
                         + (f" ({why_inconclusive})" if status == "inconclusive" else ""))]
        out.append(_verdict("data_right_values", self.wrong,
                            f"{self.right} right ({self.large_right} large values)"))
        torn_all = [*_TORN, *self.torn_received]
        out.append(_verdict("data_whole_inputs", torn_all,
                            "no torn value was used by a task or received by a client"))
        out.append(_verdict("data_not_lost", self.lost, "no future failed"))
        if leftovers is None:
            out.append(Invariant("data_freed", "inconclusive",
                                 "a client did not finish its rounds"))
        else:
            status = ("pass" if not leftovers else "fail" if settled and quiet
                      else "inconclusive")
            out.append(Invariant(
                "data_freed", status,
                f"{len(leftovers)} node table(s) not empty after every key was released"
                + (f"; {leftovers[0]}" if leftovers else "")
                + (f" ({why_inconclusive})" if status == "inconclusive" else "")))
        return out


def _verdict(name: str, bad: list[str], what: str) -> Invariant:
    if not bad:
        return Invariant(name, "pass", what)
    return Invariant(name, "fail", f"{len(bad)} case(s); first: {bad[0]}")


def leftovers(name: str, core: Any, data: Any, store: Any) -> list[str]:
    """What node ``name`` still holds: exec tables, data-plane values and
    transfers, store values and spill files."""
    out = []
    t = core.table
    tables = {"tasks": t.tasks, "results": t.results, "held": t.held, "watch": t.watch,
              "pending": t.pending, "interest": t.interest, "specs": t.specs,
              "values": data.values, "fetches": data.peers.fetches}
    for what, table in tables.items():
        if table:
            out.append(f"{name} {what}: {sorted(table)[:3]}")
    stats = store.stats()
    if stats.values or stats.memory_bytes or stats.disk_bytes:
        out.append(f"{name} store: {stats.values} values, {stats.memory_bytes} bytes in "
                   f"memory, {stats.disk_bytes} on disk")
    if store.spill.names():
        out.append(f"{name} spill: {store.spill.names()[:3]}")
    return out
