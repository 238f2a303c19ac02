"""Planted bugs (``sim/mutants.py``): each is caught on a seed known to catch
it, and the unmutated code passes the same seed."""

from __future__ import annotations

import json

import pytest

from sim.mutants import MUTANTS, Mutant, _Baseline, apply, main, run_mutant

CATCHES = {  # mutant -> (seed, invariant), from `python -m sim.mutants`
    "refutation_ignored": (0, "converges"),
    "incarnation_not_bumped": (0, "converges"),
    "suspicion_never_confirmed": (0, "crashes_detected"),
    "dead_resurrected_by_stale_alive": (1, "no_invented_incarnation"),
    "push_pull_drops_entries": (2, "converges"),
    "early_confirm": (0, "tasks_replicated"),
    "retries_ignored": (0, "tasks_right_values"),
    "failed_dependency_not_propagated": (0, "tasks_right_values"),
    "crash_limit_ignored": (0, "tasks_resolve"),
    "release_never_sent": (0, "tasks_nothing_left"),
    "release_frees_needed_value": (0, "tasks_replicated"),
    "value_used_before_last_chunk": (0, "data_whole_inputs"),
    "store_never_frees": (0, "data_freed"),
}

BASELINE = _Baseline()


def test_at_least_ten_mutants_across_gossip_exec_and_the_data_plane() -> None:
    assert len(MUTANTS) >= 10 and sorted(CATCHES) == sorted(m.name for m in MUTANTS)
    assert {m.layer for m in MUTANTS} == {"gossip", "exec", "data"}


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_mutant_is_caught_and_the_unmutated_code_passes_the_same_seed(
        mutant: Mutant) -> None:
    seed, invariant = CATCHES[mutant.name]
    row = run_mutant(mutant, range(seed, seed + 1), BASELINE)
    assert row["caught"] and row["invariant"] == invariant, row
    assert row["replay"] == f"python -m sim.mutants --only {mutant.name} --seed {seed}"
    assert BASELINE.failed(mutant.scenario, seed) == []


def test_planting_replaces_one_attribute_and_undo_restores_it() -> None:
    for m in MUTANTS:
        owner, attr = m.target
        before = dict(vars(owner))
        undo = apply(m)
        changed = [k for k in vars(owner) if vars(owner).get(k) is not before.get(k)]
        assert changed == [attr], (m.name, changed)
        undo()
        assert dict(vars(owner)) == before


def test_the_json_report_has_the_documented_shape(capsys) -> None:
    assert main(["--json", "--only", "retries_ignored", "--seed", "0"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(doc) == ["mutants", "unmutated_failures"]
    assert doc["unmutated_failures"] == 0
    (row,) = doc["mutants"]
    assert sorted(row) == ["caught", "invariant", "layer", "name", "replay", "seeds"]
    assert row["caught"] is True and row["seeds"] == 1
