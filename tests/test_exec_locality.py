"""Locality on the sans-IO exec core: a task whose large input is held by
another node runs there (the owner only learns where and how large the input
is), unless that node is overloaded; small inputs are fetched as usual;
stealing gives the tasks with the smallest inputs first."""

from __future__ import annotations

import msgpack

from mesh.exec import _records as R
from mesh.protocol import payload as P
from tests.test_exec_core import Router, spec
from tests.test_exec_lineage import key_owned_by

BIG = 1000


def router(names: list[str], replicas: int = 2) -> Router:
    r = Router(names, replicas=replicas, window=64)
    for c in r.cores.values():
        c.core.table.locality_bytes = BIG
    return r


def run_all(r: Router, name: str, values: dict[str, object]) -> list[str]:
    """Run ``name``'s queued jobs: a key in ``values`` returns that value,
    any other the sum of its arguments and of its dependencies' lengths."""
    jobs, solo = r.cores[name].take_jobs(1000)
    outs = []
    for key, _fn, _akind, args, deps in jobs + solo:
        if key in values:
            v = values[key]
        else:
            v = sum(msgpack.unpackb(args)) + sum(
                len(msgpack.unpackb(p)) for _, p in (deps or {}).values())
        outs.append((key, P.OK_MSGPACK, msgpack.packb(v)))
    r.cores[name].outcomes(outs)
    r.deliver()
    return [o[0] for o in outs]


def setup(size: int, names: tuple[str, ...] = ("a", "b", "c")) -> tuple[Router, str, str, str]:
    """``big`` (``size`` bytes, kept once on ``b``) and ``use`` (owned by
    ``c``) that depends on it, submitted from ``a``."""
    r = router(list(names))
    big = key_owned_by(r, "b", "big")
    use = next(f"use{i}" for i in range(10_000)
               if r.cores["a"].ring.pref(f"use{i}")[0] == "c")
    r.submit("a", big, spec(0, replicas=1))
    run_all(r, "b", {big: "x" * size})
    assert r.cores["b"].results[big].confirmed
    r.submit("a", use, spec(1, deps=[big]))
    return r, big, use, "b"


def test_a_task_with_a_large_input_runs_where_the_input_is() -> None:
    r, big, use, holder = setup(5 * BIG)
    owner = r.cores["c"]
    assert owner.tasks[use].state == R.STOLEN and owner.tasks[use].thief == holder
    assert big not in owner.results and not owner.tasks[use].depvals  # never fetched
    assert r.cores[holder].tasks[use].state == R.READY
    assert run_all(r, holder, {}) == [use]
    assert r.delivered("a")[use] == (P.OK_MSGPACK, 1 + 5 * BIG)
    assert owner.core.table.metrics.get("exec_tasks_placed_by_locality") == 1


def test_a_task_with_small_inputs_runs_on_its_owner() -> None:
    r, big, use, _ = setup(BIG // 2)
    owner = r.cores["c"]
    assert owner.tasks[use].state == R.READY and big in owner.tasks[use].depvals
    assert run_all(r, "c", {}) == [use]
    assert r.delivered("a")[use] == (P.OK_MSGPACK, 1 + BIG // 2)


def test_an_overloaded_holder_gets_no_task_the_owner_fetches_instead() -> None:
    r = router(["a", "b", "c"])
    r.cores["c"].set_depths({"b": 50})
    big = key_owned_by(r, "b", "big")
    use = next(f"use{i}" for i in range(10_000) if r.cores["a"].ring.pref(f"use{i}")[0] == "c")
    r.submit("a", big, spec(0, replicas=1))
    run_all(r, "b", {big: "x" * (5 * BIG)})
    r.submit("a", use, spec(1, deps=[big]))
    task = r.cores["c"].tasks[use]
    assert task.state == R.READY and big in task.depvals
    assert run_all(r, "c", {}) == [use]
    assert r.delivered("a")[use] == (P.OK_MSGPACK, 1 + 5 * BIG)


def test_the_owner_takes_the_task_back_and_fetches_when_the_runner_dies() -> None:
    r = router(["a", "b", "c", "d"], replicas=3)
    big = key_owned_by(r, "b", "big", avoid="c")
    use = next(f"use{i}" for i in range(10_000)
               if r.cores["a"].ring.pref(f"use{i}")[0] == "c")
    r.submit("a", big, spec(0))  # three copies, none on c
    run_all(r, "b", {big: "x" * (5 * BIG)})
    r.submit("a", use, spec(1, deps=[big]))
    owner = r.cores["c"]
    runner = owner.tasks[use].thief
    assert owner.tasks[use].state == R.STOLEN and runner in r.cores["a"].ring.pref(big)
    r.down.add(runner)
    r.view(sorted({"a", "b", "c", "d"} - {runner}))
    assert owner.tasks[use].state == R.READY and big in owner.tasks[use].depvals
    assert run_all(r, "c", {}) == [use]
    assert r.delivered("a")[use] == (P.OK_MSGPACK, 1 + 5 * BIG)


def test_stealing_gives_the_tasks_with_the_smallest_inputs_first() -> None:
    r = router(["a", "b"], replicas=1)
    r.cores["a"].core.table.locality_bytes = 1 << 40  # here: only the steal order counts
    deps = {}
    for size in (9, 1, 7, 3, 5, 2):
        k = key_owned_by(r, "a", f"v{size}-", avoid="b")
        r.submit("a", k, spec(0))
        run_all(r, "a", {k: "x" * (size * 100)})
        deps[size] = k
    users = {}
    for size, dep in deps.items():
        u = key_owned_by(r, "a", f"u{size}-", avoid="b")
        r.submit("a", u, spec(0, deps=[dep]))
        users[u] = size
    assert len(r.cores["a"].table.ready) == 6
    r.cores["b"].steal_from("a", 3)
    r.deliver()
    taken = sorted(users[k] for k, t in r.cores["b"].tasks.items() if t.state == R.READY)
    assert taken == [1, 2, 3]
