"""Planted bugs: how strong are the simulator's checkers?

``python -m sim.mutants [--json] [--seeds N] [--only NAME] [--seed S]``

Each mutant is a one-line bug planted from outside the production code (in
gossip, exec, and the data plane): its
``plant`` function replaces ONE named attribute (a method of a class or a
module constant) with a broken version, and returns the function that puts the
original back. Nothing under ``mesh/`` knows about it. For each mutant the
runner plays seeds 0, 1, 2, ... of the mutant's scenario until an invariant
fails that passes on the same seed without the mutant, and reports the seeds
it took and a command that replays the failure. The unmutated code plays the
same seeds (``unmutated_failures`` counts the seeds where it fails).

To point a mutant at moved code, change its ``target`` (the owner and the
attribute name); ``plant`` receives the original and returns the replacement.

``--json`` prints one document::

    {"mutants": [{"name", "layer", "caught", "seeds", "invariant", "replay"}],
     "unmutated_failures": N}
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mesh.exec._records import SPEC_DEPS, Stored, Task
from mesh.exec._running import Running
from mesh.exec._subscriber import Subscriber
from mesh.gossip import _membership as gossip_membership
from mesh.gossip._membership import Membership
from mesh.gossip._messages import Alive
from mesh.gossip._state import Status
from mesh.protocol.messages import Unsubscribe
from mesh.store._driver import NodeStore
from mesh.store._transfer import COMPLETE, Complete, Credit, Receiver
from sim.network import NetConfig
from sim.scenario import Scenario

__all__ = ["MUTANTS", "Mutant", "apply", "main", "run_mutant"]

GOSSIP_SCENARIO: dict[str, Any] = {
    "workload": "gossip", "nodes": 16, "duration": 120.0,
    "network": {"loss": 0.08},
    "rolling": {"crash": 2, "restart": 1, "partition": 1, "pause": 1},
}
"""Faults every gossip mutant plays under (loss is under the calibrated 15%)."""

TASKS_SCENARIO: dict[str, Any] = {
    "workload": "tasks", "nodes": 8, "duration": 60.0,
    "network": {"loss": 0.05, "duplicate": 0.05, "reorder": 0.05},
    "rolling": {},
}
"""Faults every exec mutant plays under: loss, duplication and reordering. The
unmutated exec layer leaves results behind when subscribers crash or are
partitioned away (see docs/sim.md), so membership faults would make
``tasks_nothing_left`` fail without any mutant."""


DATA_SCENARIO: dict[str, Any] = {
    "workload": "data", "nodes": 4, "duration": 56.0, "fault_end": 12.0,
    "network": {"loss": 0.05, "duplicate": 0.02, "reorder": 0.02},
    "rolling": {"crash": 1, "restart": 1, "partition": 1, "pause": 1},
}
"""Faults every data-plane mutant plays under: those of
``tests/test_sim_large_values.py`` (faults end at 12 s, so that
``data_freed`` is conclusive by 56 s)."""


@dataclass(frozen=True)
class Mutant:
    name: str
    layer: str
    target: tuple[Any, str]
    """The owner (class or module) and the name of the one attribute replaced."""
    plant: Callable[[Any], Any]
    """Given the original attribute, returns its broken replacement."""
    what: str
    scenario: dict[str, Any] = field(default_factory=dict)

    @property
    def target_name(self) -> str:
        owner, attr = self.target
        mod = getattr(owner, "__module__", None)
        base = f"{mod}.{owner.__qualname__}" if mod and hasattr(owner, "__qualname__") \
            else owner.__name__
        return f"{base}.{attr}"


def apply(m: Mutant) -> Callable[[], None]:
    """Plant ``m``; returns the undo."""
    owner, attr = m.target
    had = attr in vars(owner)
    original = getattr(owner, attr)
    setattr(owner, attr, m.plant(original))

    def undo() -> None:
        if had:
            setattr(owner, attr, original)
        else:  # it was inherited: remove the shadowing attribute
            delattr(owner, attr)

    return undo


# --- gossip ------------------------------------------------------------------------
def _no_refute(orig: Callable[..., None]) -> Callable[..., None]:
    def _refute(self: Membership, incarnation: int, informer: Any = None) -> None:
        return None  # an accused live node stays quiet

    return _refute


def _refute_same_incarnation(orig: Callable[..., None]) -> Callable[..., None]:
    def _refute(self: Membership, incarnation: int, informer: Any = None) -> None:
        # refutes with the accused incarnation itself, never bumped past it
        me = self.local
        new = me.with_(incarnation=max(incarnation, me.incarnation), status=Status.ALIVE)
        self._table.put(new)
        self._broadcast(Alive(new.incarnation, self.name, self.addr, new.meta))
        if informer is not None:
            self._send(informer, [])

    return _refute


def _never_confirm(orig: Callable[..., None]) -> Callable[..., None]:
    def _suspicion_expired(self: Membership, name: str, now: float) -> None:
        self._suspicions.pop(name)  # the timer fires; the suspect is never declared dead

    return _suspicion_expired


def _stale_alive_resurrects(orig: Callable[..., None]) -> Callable[..., None]:
    def _on_alive(self: Membership, a: Alive, now: float, quiet: bool = False) -> None:
        old = self._members.get(a.node)
        if old is not None and old.status.gone and a.incarnation <= old.incarnation:
            a = Alive(old.incarnation + 1, a.node, a.addr, a.meta)  # stale alive wins
        return orig(self, a, now, quiet)

    return _on_alive


def _push_pull_drops(orig: Callable[..., Any]) -> Callable[..., Any]:
    def check_row(row: Any, known: dict, *limits: Any) -> Any:
        entry = orig(row, known, *limits)
        return entry if entry is None or entry[3] is Status.ALIVE else None  # deaths lost

    return check_row


# --- exec --------------------------------------------------------------------------
def _early_confirm(orig: Callable[..., None]) -> Callable[..., None]:
    def check_confirmed(self: Running, key: str, st: Stored) -> None:
        st.confirmed = True  # before the replicas acknowledge
        self.on_confirmed(key, st)

    return check_confirmed


def _retries_ignored(orig: Callable[..., bool]) -> Callable[..., bool]:
    def should_retry(self: Running, task: Task, kind: int) -> bool:
        return False  # as if every retry were used up

    return should_retry


def _failure_not_propagated(orig: Callable[..., bool]) -> Callable[..., bool]:
    def take_dependency(self: Running, task: Task, dep: str, kind: int, payload: bytes) -> bool:
        task.depvals[dep] = [kind, payload]  # an error taken as if it were a value
        return False

    return take_dependency


def _crash_limit_ignored(orig: Callable[..., None]) -> Callable[..., None]:
    def crashed(self: Running, task: Task) -> None:
        self.queue(task, "retry")  # a task that kills its worker is retried forever

    return crashed


def _release_never_sent(orig: Callable[..., bool]) -> Callable[..., bool]:
    def needed(self: Subscriber, key: str) -> bool:
        return True  # no key is ever unneeded: no release, no answer to a recheck

    return needed


def _release_while_needed(orig: Callable[..., None]) -> Callable[..., None]:
    def release_deps(self: Running, task: Task) -> None:
        orig(self, task)
        for dep in task.spec[SPEC_DEPS]:  # a dependency released again: its result goes early
            for n in self.t.ring.pref(dep):
                self.t.send(n, Unsubscribe(dep, self.t.name))

    return release_deps


# --- data plane ----------------------------------------------------------------------
def _complete_before_last_chunk(orig: Callable[..., None]) -> Callable[..., None]:
    def _maybe_complete(self: Receiver, out: list) -> None:
        offer = self.offer
        assert offer is not None and self.sink is not None
        if self.next_seq < self.nchunks - 1:  # one chunk early, and no digest check
            return
        self.value = self.sink.value()
        self.sink = None
        self.state = COMPLETE
        out.append(Credit(offer.tid, self.nchunks, self.nchunks))
        out.append(Complete(offer.tid, self.value))

    return _maybe_complete


def _store_never_frees(orig: Callable[..., None]) -> Callable[..., None]:
    def release(self: NodeStore, key: str) -> None:
        return None  # a value no one needs stays in memory (or on disk) forever

    return release


MUTANTS: list[Mutant] = [
    Mutant("refutation_ignored", "gossip", (Membership, "_refute"), _no_refute,
           "an accused live node never refutes", GOSSIP_SCENARIO),
    Mutant("incarnation_not_bumped", "gossip", (Membership, "_refute"),
           _refute_same_incarnation,
           "a refutation carries the accused incarnation, not a higher one", GOSSIP_SCENARIO),
    Mutant("suspicion_never_confirmed", "gossip", (Membership, "_suspicion_expired"),
           _never_confirm, "a suspicion times out without declaring the member dead",
           GOSSIP_SCENARIO),
    Mutant("dead_resurrected_by_stale_alive", "gossip", (Membership, "_on_alive"),
           _stale_alive_resurrects, "an alive no newer than a death brings the member back",
           GOSSIP_SCENARIO),
    Mutant("push_pull_drops_entries", "gossip", (gossip_membership, "check_row"),
           _push_pull_drops, "push-pull merges only the alive entries of a table",
           GOSSIP_SCENARIO),
    Mutant("early_confirm", "exec", (Running, "check_confirmed"), _early_confirm,
           "a result is confirmed before its replicas acknowledge", TASKS_SCENARIO),
    Mutant("retries_ignored", "exec", (Running, "should_retry"), _retries_ignored,
           "a task that raised is not run again despite retries", TASKS_SCENARIO),
    Mutant("failed_dependency_not_propagated", "exec", (Running, "take_dependency"),
           _failure_not_propagated,
           "a dependent runs on its dependency's error as if it were a value",
           TASKS_SCENARIO),
    Mutant("crash_limit_ignored", "exec", (Running, "crashed"), _crash_limit_ignored,
           "a task that kills its worker is retried forever (no KilledWorker)", TASKS_SCENARIO),
    Mutant("release_never_sent", "exec", (Subscriber, "needed"), _release_never_sent,
           "holders are never told a key was released (nor answered when they recheck)",
           TASKS_SCENARIO),
    Mutant("release_frees_needed_value", "exec", (Running, "release_deps"),
           _release_while_needed,
           "a node releases a dependency it still holds for a client", TASKS_SCENARIO),
    Mutant("value_used_before_last_chunk", "data", (Receiver, "_maybe_complete"),
           _complete_before_last_chunk,
           "a received value is handed over before its last chunk, unchecked", DATA_SCENARIO),
    Mutant("store_never_frees", "data", (NodeStore, "release"), _store_never_frees,
           "a node's store keeps every value it was given, released or not", DATA_SCENARIO),
]


def scenario(spec: dict[str, Any]) -> Scenario:
    sc = Scenario(name="mutants", workload=spec["workload"], nodes=spec["nodes"],
                  duration=spec["duration"], network=NetConfig(**spec["network"]),
                  rolling=dict(spec["rolling"]), fault_end=spec.get("fault_end"))
    sc.validate()
    return sc


def _failed(spec: dict[str, Any], seed: int) -> list[str]:
    from sim.runner import simulate

    result = simulate(scenario(spec), seed)
    return [i.name for i in result.invariants if i.status == "fail"]


class _Baseline:
    """Unmutated runs, cached per scenario and seed."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, int], list[str]] = {}

    def failed(self, spec: dict[str, Any], seed: int) -> list[str]:
        k = (json.dumps(spec, sort_keys=True), seed)
        if k not in self.cache:
            self.cache[k] = _failed(spec, seed)
        return self.cache[k]

    def failures(self) -> int:
        return sum(1 for v in self.cache.values() if v)


def run_mutant(m: Mutant, seeds: range, baseline: _Baseline | None = None) -> dict[str, Any]:
    """Play ``seeds`` until ``m`` is caught; the report entry for it."""
    baseline = baseline or _Baseline()
    tried = 0
    for seed in seeds:
        tried += 1
        undo = apply(m)
        try:
            failed = _failed(m.scenario, seed)
        finally:
            undo()
        if not failed:
            continue
        clean = baseline.failed(m.scenario, seed)
        caught = [name for name in failed if name not in clean]
        if caught:
            return {"name": m.name, "layer": m.layer, "caught": True, "seeds": tried,
                    "invariant": caught[0], "seed": seed, "target": m.target_name,
                    "replay": f"python -m sim.mutants --only {m.name} --seed {seed}"}
    return {"name": m.name, "layer": m.layer, "caught": False, "seeds": tried,
            "invariant": None, "seed": None, "target": m.target_name,
            "replay": f"python -m sim.mutants --only {m.name} --seeds {len(seeds)}"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sim.mutants", description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100, help="seeds to try per mutant (default 100)")
    p.add_argument("--seed", type=int, help="play only this seed (a replay)")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="only this mutant (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    args = p.parse_args(argv)
    known = {m.name: m for m in MUTANTS}
    bad = [n for n in args.only if n not in known]
    if bad:
        print(f"unknown mutant {bad[0]!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    chosen = [known[n] for n in args.only] if args.only else MUTANTS
    seeds = range(args.seed, args.seed + 1) if args.seed is not None else range(args.seeds)
    baseline = _Baseline()
    rows = [run_mutant(m, seeds, baseline) for m in chosen]
    for m in chosen:  # the unmutated code on every seed some mutant played
        for seed in seeds[:max(r["seeds"] for r in rows if r["name"] == m.name)]:
            baseline.failed(m.scenario, seed)
    doc = {"mutants": [{k: r[k] for k in ("name", "layer", "caught", "seeds", "invariant",
                                           "replay")} for r in rows],
           "unmutated_failures": baseline.failures()}
    if args.json:
        print(json.dumps(doc))
    else:
        print(f"{'mutant':34} {'layer':7} {'caught':7} {'seeds':>5}  {'invariant':22} replay")
        for r in rows:
            print(f"{r['name']:34} {r['layer']:7} {'yes' if r['caught'] else 'NO':7} "
                  f"{r['seeds']:>5}  {r['invariant'] or '-':22} {r['replay']}")
        print(f"unmutated failures: {doc['unmutated_failures']} "
              f"(of {len(baseline.cache)} unmutated runs)")
    missed = sum(1 for r in rows if not r["caught"])
    return 1 if missed or doc["unmutated_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
