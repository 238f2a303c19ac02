"""Datasets under the simulator: word counts and sorts while nodes crash,
restart, pause and partitions cut the mesh (the ``datasets`` workload of
``sim.runner.Simulation``; its invariants are in ``sim/workloads/datasets.py``).
The 50-seed campaign, ``python -m sim.campaign --workload datasets --seeds 50``,
is in docs/datasets.md."""

from __future__ import annotations

import pytest

from sim.campaign import scenario
from sim.network import NetConfig
from sim.runner import Simulation
from sim.scenario import Scenario

DATASETS = ("datasets_complete", "datasets_equal_reference")


def run(sc: Scenario, seed: int) -> tuple:
    sim = Simulation(sc, seed)
    result = sim.run()
    return result, {i.name: i for i in result.invariants}, sim.workload


@pytest.mark.parametrize("seed", range(4))
def test_word_counts_and_sorts_equal_their_references_through_crashes_and_partitions(
        seed: int) -> None:
    sc = Scenario(name="datasets", nodes=6, duration=60.0, workload="datasets",
                  network=NetConfig(loss=0.05, duplicate=0.02),
                  rolling={"crash": 1, "restart": 1, "partition": 1, "pause": 1})
    result, verdicts, wl = run(sc, seed)
    bad = [f"{n}: {verdicts[n].detail}" for n in DATASETS if verdicts[n].status != "pass"]
    assert not bad, bad + result.errors
    assert wl.stats.right >= 12 and wl.stats.right == wl.stats.actions
    assert any(r.kind == "crash" and not r.skipped for r in result.faults)


@pytest.mark.parametrize("seed", [24, 36])
def test_a_sort_finishes_when_the_nodes_holding_its_samples_die(seed: int) -> None:
    """Seeds of the every-fault campaign where a crash took the only copies
    of a sort's samples: the action still holds them, so they run again."""
    result, verdicts, _ = run(scenario("datasets", seed), seed)
    bad = [f"{n}: {verdicts[n].detail}" for n in DATASETS if verdicts[n].status != "pass"]
    assert not bad, bad + result.errors


def test_one_seed_gives_one_trace() -> None:
    sc = Scenario(name="datasets", nodes=5, duration=40.0, workload="datasets",
                  rolling={"crash": 1, "restart": 1})
    assert run(sc, 7)[0].trace_digest == run(sc, 7)[0].trace_digest
