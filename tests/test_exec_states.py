"""The task-state table, checked by a hypothesis state machine: cores wired
through the in-memory router are driven with random submissions, executor
outcomes, steals, ticks, releases, crashes and joins. Every state change
must be a move of mesh.exec._records.TRANSITIONS (``move`` raises otherwise),
and the states must agree with the queues."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mesh.exec import _records as R
from mesh.protocol import payload as P
from mesh.protocol.messages import Release, encode
from tests.test_exec_core import Router, spec

NODES = ["a", "b", "c", "d"]
KEYS = [f"k{i}" for i in range(6)]


class TaskStates(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.router = Router(NODES[:3], window=64)
        self.alive = list(NODES[:3])
        self.submitted: list[str] = []

    @rule(key=st.sampled_from(KEYS), entry=st.integers(0, 3), ndeps=st.integers(0, 2),
          retries=st.integers(0, 1), replicas=st.sampled_from([0, 1]))
    def submit(self, key: str, entry: int, ndeps: int, retries: int, replicas: int) -> None:
        node = self.alive[entry % len(self.alive)]
        deps = [k for k in self.submitted if k != key][:ndeps]
        self.router.submit(node, key, spec(1, deps=deps, retries=retries, replicas=replicas))
        self.submitted.append(key)

    @rule(node=st.integers(0, 3), outcome=st.sampled_from(["ok", "error", "crash"]))
    def run(self, node: int, outcome: str) -> None:
        name = self.alive[node % len(self.alive)]
        if outcome == "ok":
            self.router.run(name)
        elif outcome == "error":
            self.router.run(name, kind=P.ERROR, result=0)
        else:
            self.router.run(name, kind=P.CRASHED)

    @rule(thief=st.integers(0, 3), victim=st.integers(0, 3), n=st.integers(1, 4))
    def steal(self, thief: int, victim: int, n: int) -> None:
        t, v = self.alive[thief % len(self.alive)], self.alive[victim % len(self.alive)]
        if t != v:
            self.router.cores[t].steal_from(v, n)
            self.router.deliver()

    @rule(node=st.integers(0, 3), now=st.floats(0, 200))
    def tick(self, node: int, now: float) -> None:
        self.router.cores[self.alive[node % len(self.alive)]].tick(now)
        self.router.deliver()

    @rule(key=st.sampled_from(KEYS), entry=st.integers(0, 3))
    def release(self, key: str, entry: int) -> None:
        core = self.router.cores[self.alive[entry % len(self.alive)]]
        if 1 in core.sessions:
            core.client_messages(1, [encode(Release(key))])
            self.router.deliver()

    @precondition(lambda self: len(self.alive) > 2)
    @rule(victim=st.integers(0, 3))
    def crash(self, victim: int) -> None:
        name = self.alive.pop(victim % len(self.alive))
        self.router.down.add(name)
        self.router.view(self.alive)

    @precondition(lambda self: "d" not in self.router.cores)
    @rule()
    def join(self) -> None:
        self.router.add("d")
        self.alive.append("d")
        self.router.view(self.alive)

    @invariant()
    def states_agree_with_the_queues(self) -> None:
        for name in self.alive:
            core = self.router.cores[name]
            ready = set(core.table.ready)
            for key, task in core.tasks.items():
                assert task.state in (R.HELD, R.WAITING, R.READY, R.RUNNING, R.STOLEN, R.KEPT)
                if task.state == R.KEPT:
                    assert not task.missing and not task.depvals, f"{name}: {key} kept busy"
                if task.state == R.READY:
                    assert key in ready, f"{name}: {key} is ready but not queued"
                if task.state == R.WAITING:
                    assert task.missing, f"{name}: {key} waits for nothing"
                if task.state == R.STOLEN:
                    assert task.thief and task.thief != name


TaskStates.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                        deadline=None)
test_task_states_move_only_along_the_transition_table = TaskStates.TestCase


def test_the_table_names_every_state_and_only_known_states() -> None:
    states = {s for s, _ in R.TRANSITIONS} | set(R.TRANSITIONS.values())
    assert states == {R.HELD, R.WAITING, R.READY, R.RUNNING, R.STOLEN, R.KEPT}
    task = R.Task("k", spec(1), set())
    with pytest.raises(R.IllegalTransition, match="held"):
        R.move(task, "start")  # a held backup copy is never handed to the executor
