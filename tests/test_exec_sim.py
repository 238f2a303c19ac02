"""The real exec service and client under the simulator, with crashes.

Each seed runs four nodes on simulated workers, submits independent tasks and
task graphs, crashes (and sometimes restarts) nodes mid-run, makes workers
crash at random, and checks that nothing is lost, nothing resolves twice or
wrongly, and a task that always kills its worker ends in ``KilledWorker``.
"""

from __future__ import annotations

import pytest

from sim.exec_sim import run_exec_sim

SEEDS = range(50)


@pytest.mark.parametrize("seed", SEEDS)
def test_no_task_is_lost_or_resolved_wrongly_despite_crashes(seed: int) -> None:
    result = run_exec_sim(seed)
    assert result.ok, f"seed {seed}: " + "\n".join(result.errors)
    assert result.resolved == result.submitted
    assert result.killed == 0


def test_workers_crash_and_tasks_still_finish() -> None:
    result = run_exec_sim(7, crash_nodes=False, crash_rate=0.2)
    assert result.ok, "\n".join(result.errors)
    assert result.worker_crashes > 10
    # A task dies of random crashes only if it hits three in a row: rare.
    assert result.killed <= 3


def test_one_seed_gives_one_trace() -> None:
    a = run_exec_sim(3)
    b = run_exec_sim(3)
    assert a.trace_digest == b.trace_digest
    assert (a.submitted, a.resolved, a.node_crashes, a.worker_crashes, a.virtual_seconds) == (
        b.submitted, b.resolved, b.node_crashes, b.worker_crashes, b.virtual_seconds)
    assert run_exec_sim(4).trace_digest != a.trace_digest


@pytest.mark.parametrize("seed", range(10))
def test_idle_nodes_steal_from_a_loaded_owner_without_losing_tasks(seed: int) -> None:
    result = run_exec_sim(seed, skew=True, crash_nodes=seed % 2 == 0)
    assert result.ok, f"seed {seed}: " + "\n".join(result.errors)
    assert result.resolved == result.submitted
    assert result.stolen > 10
