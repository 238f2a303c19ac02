"""Actors under the simulator (the ``actors`` workload of the one cluster
harness, ``sim.runner.Simulation``): two clients call durable counters
through two handles each while crashes, restarts, partitions, pauses, worker
crashes, loss and duplication roll, over 100 seeds; some arguments are
futures of tasks and of other actors' calls. No call is lost, none is
applied twice, every future resolves once (``sim/workloads/actors.py``).

The faults stop at 25 s of 60: a durable call waits for every replica its
host believes alive, so a call whose replica died resolves once the failure
detector saw it (``Config.detection_bound``, 27.8 s here), before the end."""

from __future__ import annotations

import pytest

from sim.network import NetConfig
from sim.runner import Simulation
from sim.scenario import Scenario

ACTORS = ("actors_resolve", "actors_resolved_once", "actors_no_call_lost",
          "actors_exactly_once")
ROLLING = {"crash": 1, "restart": 1, "partition": 1, "pause": 1}


def run(seed: int) -> tuple:
    sc = Scenario(name="actors", nodes=5, duration=60.0, fault_end=25.0, workload="actors",
                  network=NetConfig(loss=0.02, duplicate=0.02), rolling=dict(ROLLING))
    sim = Simulation(sc, seed)
    result = sim.run()
    return result, {i.name: i for i in result.invariants}, sim.workload


@pytest.mark.parametrize("seed", range(100))
def test_no_actor_call_is_lost_or_applied_twice_under_crashes_partitions_and_pauses(
        seed: int) -> None:
    result, verdicts, wl = run(seed)
    bad = [f"{n}: {verdicts[n].detail}" for n in ACTORS if verdicts[n].status != "pass"]
    assert not bad, bad + result.errors
    assert wl.calls > 50
