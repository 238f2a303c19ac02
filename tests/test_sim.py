"""The simulator end to end: determinism, the checker failing when the
protocol is broken, the shipped scenarios, and the ``mesh sim`` contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mesh.gossip._membership as membership_mod
from mesh.config import Config
from mesh.gossip import EventKind, MemberEvent, Status
from mesh.gossip._state import Member
from sim.invariants import Observer
from sim.network import NetConfig
from sim.runner import Result, simulate
from sim.scenario import FaultSpec, Scenario, load
from sim.trace import Trace

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "sim" / "scenarios").glob("*.toml"))


def _mixed(seed_nodes: int = 20, duration: float = 40.0) -> Scenario:
    return Scenario(
        name="mixed", nodes=seed_nodes, duration=duration, fault_end=25.0,
        network=NetConfig(loss=0.03, duplicate=0.01, reorder=0.05),
        rolling={"crash": 1, "restart": 1, "pause": 1, "partition": 1, "swizzle": 3},
    )


def _status(result: Result) -> dict[str, str]:
    return {i.name: i.status for i in result.invariants}


# --- determinism ---------------------------------------------------------------
def test_same_seed_gives_the_same_trace_twice_in_one_process() -> None:
    a = simulate(_mixed(), 11)
    b = simulate(_mixed(), 11)
    c = simulate(_mixed(), 12)
    assert a.events > 5_000
    assert a.trace_digest == b.trace_digest
    assert (a.messages_sent, a.detect, a.converge) == (b.messages_sent, b.detect, b.converge)
    assert c.trace_digest != a.trace_digest


def _cli_json(args: list[str], hashseed: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hashseed, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "sim", *args, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_same_seed_gives_the_same_trace_in_processes_with_different_hash_seeds() -> None:
    args = ["--nodes", "15", "--duration", "30", "--seed", "5", "--loss", "0.05",
            "--crash", "1", "--partition", "1", "--pause", "1"]
    a = _cli_json(args, "0")
    b = _cli_json(args, "4242")
    assert a["events"] > 1000
    assert a["trace_digest"] == b["trace_digest"]
    other = _cli_json([*args[:5], "6", *args[6:]], "0")
    assert other["trace_digest"] != a["trace_digest"]


# --- the checker fails when it should -------------------------------------------
def _lossy_with_a_crash() -> Scenario:
    return Scenario(name="lossy", nodes=30, duration=80.0, fault_end=30.0,
                    network=NetConfig(loss=0.12), rolling={"crash": 1})


def test_the_unbroken_protocol_passes_the_lossy_run_the_broken_ones_fail() -> None:
    # the control for the tests below: same scenario, same seed, nothing broken
    assert set(_status(simulate(_lossy_with_a_crash(), 1)).values()) == {"pass"}


def test_suspicion_timeout_of_zero_is_caught_as_false_deaths() -> None:
    sc = _lossy_with_a_crash()
    sc.config["suspicion_mult"] = 0
    result = simulate(sc, 1)
    assert _status(result)["no_false_dead"] == "fail"
    assert result.false_dead and not result.ok


def test_ignored_refutations_are_caught_as_false_deaths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(membership_mod.Membership, "_refute", lambda self, incarnation: None)
    result = simulate(_lossy_with_a_crash(), 1)
    assert _status(result)["no_false_dead"] == "fail"


def test_a_clock_jump_excuses_only_its_own_nodes_declarations_for_one_probe_period() -> None:
    names = ["a", "b", "c"]
    obs = Observer(names, Config(), Trace())
    gens = [obs.node_up(i, 0.0) for i in range(3)]
    obs.clock_jumped(0, 10.0)

    def dead(o: int, m: int, t: float, incarnation: int) -> None:
        member = Member(names[m], ("10.0.0.1", 7946 + m), incarnation, Status.DEAD, {})
        obs.on_event(o, gens[o], MemberEvent(EventKind.DEAD, member), t)

    dead(0, 1, 10.5, 1)  # a's suspicion ran out at its first wakeup after the jump
    dead(2, 1, 11.0, 2)  # c's clock did not jump
    dead(0, 2, 10.0 + obs.jump_window + 1.0, 3)  # a, once its timers are back in step
    assert [(f["declared_by"], f["member"]) for f in obs.false_dead] == [("c", "b"), ("a", "c")]
    assert obs.excused_dead == 1


def test_ignored_refutations_are_caught_as_false_deaths_despite_clock_jumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(membership_mod.Membership, "_refute",
                        lambda self, incarnation, informer=None: None)
    sc = _lossy_with_a_crash()
    sc.faults = [FaultSpec("skew", 10.0, None, count=1, params={"rate": 1.0, "jump": 20.0})]
    result = simulate(sc, 1)
    assert result.excused_dead >= 1  # the jumped node's own early declaration
    assert _status(result)["no_false_dead"] == "fail"


def test_suspicions_that_never_become_deaths_fail_crash_detection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forget(self: membership_mod.Membership, name: str, now: float) -> None:
        self._suspicions.pop(name)  # expire the timer but never declare dead

    monkeypatch.setattr(membership_mod.Membership, "_suspicion_expired", forget)
    sc = Scenario(name="no-death", nodes=20, duration=100.0, fault_end=20.0,
                  faults=[FaultSpec("crash", 15.0, None, count=2)])
    result = simulate(sc, 2)
    status = _status(result)
    assert status["crashes_detected"] == "fail"
    assert status["converges"] == "fail"
    assert result.detect["undetected"] == 2


def test_a_timer_that_spins_at_one_instant_fails_the_run_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a core whose next deadline is always already past: its driver re-arms
    # the timer for "now" forever
    monkeypatch.setattr(membership_mod.Membership, "next_deadline", lambda self: 0.0)
    sc = Scenario(name="spin", nodes=10, duration=60.0, fault_end=20.0)
    result = simulate(sc, 3)
    assert _status(result)["no_errors"] == "fail"
    assert "SimLivelock" in result.errors[0]


# --- shipped scenarios -----------------------------------------------------------
def test_the_required_scenarios_are_shipped() -> None:
    names = {p.stem for p in SCENARIOS}
    assert {"steady", "rolling_crashes", "partition_heal", "loss10", "flapping",
            "one_way_partition"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_each_shipped_scenario_passes_its_invariants_at_small_scale(path: Path) -> None:
    sc = load(path)
    sc.nodes = min(sc.nodes, 30)
    result = simulate(sc, 1)
    failed = [i for i in result.invariants if i.status == "fail"]
    assert not failed, failed
    assert result.messages_sent > 0


# --- the command line ----------------------------------------------------------------
def test_cli_json_document_has_the_documented_keys() -> None:
    doc = _cli_json(["--nodes", "12", "--duration", "25", "--crash", "1", "--seed", "2"], "0")
    for key in ("nodes", "sim_seconds", "wall_seconds", "events", "messages_sent",
                "messages_dropped", "detect_s", "false_dead", "converge_s",
                "bytes_per_node_per_s", "invariants", "trace_digest"):
        assert key in doc, key
    assert doc["nodes"] == 12 and doc["sim_seconds"] == 25.0
    assert set(doc["detect_s"]) >= {"min", "median", "max"}
    assert {i["name"] for i in doc["invariants"]} >= {"no_false_dead", "converges"}
    assert all(i["status"] in ("pass", "fail", "inconclusive") for i in doc["invariants"])


def test_cli_failed_invariant_exits_nonzero_and_prints_seed_and_command() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["--nodes", "20", "--duration", "60", "--seed", "9", "--loss", "0.12",
            "--set", "suspicion_mult=0", "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "sim", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL no_false_dead" in proc.stdout
    assert "seed 9" in proc.stderr
    assert "mesh sim --nodes 20 --seed 9 --duration 60.0 --loss 0.12 --set suspicion_mult=0" in (
        proc.stderr
    )


def test_cli_rejects_a_bad_scenario_with_exit_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[fault]]\nkind = "meteor"\nat = 1.0\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "sim", "--scenario", str(bad)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown fault kind 'meteor'" in proc.stderr
