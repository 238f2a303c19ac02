"""``workers=``: a task restricted to named nodes runs on one of them, whatever
its owner, locality or stealing would choose; if none is alive it fails with
a message naming them. On the sans-IO exec core, and at the client API."""

from __future__ import annotations

import pytest

from mesh._client_protocol import check_workers
from mesh.exec import _records as R
from mesh.protocol import payload as P
from mesh.protocol.messages import MAX_NAME, MAX_WORKERS
from tests.test_exec_core import spec
from tests.test_exec_lineage import key_owned_by
from tests.test_exec_locality import BIG, router, run_all


def owned_by(r, owner: str, prefix: str) -> str:
    return next(f"{prefix}{i}" for i in range(10_000)
                if r.cores["a"].ring.pref(f"{prefix}{i}")[0] == owner)


def test_a_task_restricted_to_another_node_runs_there_not_on_its_owner() -> None:
    r = router(["a", "b", "c"])
    key = owned_by(r, "c", "k")
    r.submit("a", key, spec(2, 3, workers=["b"]))
    owner = r.cores["c"]
    assert owner.tasks[key].state == R.STOLEN and owner.tasks[key].thief == "b"
    assert run_all(r, "c", {}) == []
    assert run_all(r, "b", {}) == [key]
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 5)


def test_a_restricted_task_runs_on_its_named_node_though_its_large_input_is_elsewhere() -> None:
    r = router(["a", "b", "c"])
    big = key_owned_by(r, "b", "big")
    r.submit("a", big, spec(0, replicas=1))
    run_all(r, "b", {big: "x" * (5 * BIG)})
    use = owned_by(r, "c", "use")
    r.submit("a", use, spec(1, deps=[big], workers=["c"]))
    owner = r.cores["c"]
    assert owner.tasks[use].state == R.READY and big in owner.tasks[use].depvals  # fetched
    assert owner.core.table.metrics.get("exec_tasks_placed_by_locality") == 0
    assert run_all(r, "c", {}) == [use]
    assert r.delivered("a")[use] == (P.OK_MSGPACK, 1 + 5 * BIG)


def test_an_idle_node_that_is_not_named_steals_no_restricted_task() -> None:
    r = router(["a", "b"], replicas=1)
    keys = [key_owned_by(r, "a", f"t{i}-", avoid="b") for i in range(6)]
    for k in keys[:3]:
        r.submit("a", k, spec(1, workers=["a"]))
    for k in keys[3:]:
        r.submit("a", k, spec(1))
    r.cores["b"].steal_from("a", 6)
    r.deliver()
    taken = {k for k, t in r.cores["b"].tasks.items() if t.state == R.READY}
    assert taken and taken <= set(keys[3:])


def test_a_restricted_task_moves_to_another_named_node_when_its_runner_dies() -> None:
    r = router(["a", "b", "c", "d"], replicas=2)
    key = owned_by(r, "a", "k")
    r.submit("a", key, spec(4, workers=["b", "c"]))
    first = r.cores["a"].tasks[key].thief
    assert first in ("b", "c")
    other = ({"b", "c"} - {first}).pop()
    r.down.add(first)
    r.view(sorted({"a", "b", "c", "d"} - {first}))
    task = r.cores["a"].tasks[key]
    assert task.state == R.STOLEN and task.thief == other
    assert run_all(r, other, {}) == [key]
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 4)


def test_a_task_restricted_to_dead_nodes_fails_naming_them() -> None:
    r = router(["a", "b", "c"])
    key = owned_by(r, "a", "k")
    r.down.add("c")
    r.view(["a", "b"])
    r.submit("a", key, spec(1, workers=["c"]))
    kind, payload = r.delivered("a")[key]
    assert kind == P.FAILED
    assert "may run only on c" in payload.decode() and "workers=" in payload.decode()


@pytest.mark.parametrize("bad, error, match", [
    (3, TypeError, "workers must be a node name"),
    ([1], TypeError, "node names"),
    ([], ValueError, "at least one"),
    ([""], ValueError, "1 to"),
    (["n" * (MAX_NAME + 1)], ValueError, "1 to"),
    ([f"n{i}" for i in range(MAX_WORKERS + 1)], ValueError, "at most"),
])
def test_bad_workers_are_refused_at_the_api_naming_the_argument(bad, error, match) -> None:
    with pytest.raises(error, match=match):
        check_workers(bad)


def test_workers_take_one_name_or_many_sorted_without_repeats() -> None:
    assert check_workers(None) == []
    assert check_workers("n2") == ["n2"]
    assert check_workers(("n2", "n1", "n2")) == ["n1", "n2"]
