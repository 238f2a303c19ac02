"""Durability per call and lineage, on the sans-IO exec core: a result kept
with ``replicas=1`` lives on one node, its spec on the whole spec list, and
when its node dies the key's new owner computes it again, recursively
through lost inputs; every future still resolves once, with the right value."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mesh.exec import _records as R
from mesh.protocol import payload as P
from mesh.protocol.messages import Release, encode
from tests.test_exec_core import Router, spec


def settle(r: Router, alive: list[str], now: float = 1.0) -> float:
    """Run every queued job and tick every node until nothing moves."""
    quiet = 0
    while quiet < 3:
        ran = False
        for name in alive:
            while r.run(name):
                ran = True
        now += 1.0
        for name in alive:
            r.cores[name].tick(now)
        r.deliver()
        quiet = 0 if ran else quiet + 1
    return now


def holders(r: Router, alive: list[str], key: str) -> list[str]:
    return [n for n in alive if key in r.cores[n].results]


def kept(r: Router, alive: list[str], key: str) -> list[str]:
    return [n for n in alive if key in r.cores[n].tasks
            and r.cores[n].tasks[key].state == R.KEPT]


def key_owned_by(r: Router, owner: str, prefix: str, avoid: str = "a") -> str:
    ring = r.cores[owner].ring
    return next(f"{prefix}{i}" for i in range(10_000)
                if ring.pref(f"{prefix}{i}")[0] == owner and avoid not in ring.pref(f"{prefix}{i}"))


def test_a_replicas_1_result_is_stored_once_and_its_spec_kept_by_its_list() -> None:
    r = Router(["a", "b", "c", "d"])
    key = key_owned_by(r, "b", "k")
    owner, second = r.cores["a"].ring.pref(key)
    r.submit("a", key, spec(20, 22, replicas=1))
    settle(r, ["a", "b", "c", "d"])
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 42)
    assert holders(r, list(r.cores), key) == [owner]
    assert sorted(kept(r, list(r.cores), key)) == sorted([owner, second])


def test_the_default_replicas_keep_no_spec_once_the_result_is_stored() -> None:
    r = Router(["a", "b", "c"])
    r.submit("a", "k", spec(1, replicas=0))
    settle(r, ["a", "b", "c"])
    assert len(holders(r, ["a", "b", "c"], "k")) == 2
    assert not any("k" in r.cores[n].tasks for n in "abc")


def test_a_lost_replicas_1_result_is_computed_again_by_the_new_owner() -> None:
    r = Router(["a", "b", "c", "d"])
    key = key_owned_by(r, "b", "k")
    second = r.cores["a"].ring.pref(key)[1]
    r.submit("a", key, spec(20, 22, replicas=1))
    settle(r, list(r.cores))
    r.down.add("b")
    alive = ["a", "c", "d"]
    r.view(alive)
    assert r.cores[second].tasks[key].state == R.READY
    assert r.cores[second].core.table.metrics.get("exec_lineage_recomputed") == 1
    settle(r, alive)
    assert holders(r, alive, key) == [second]
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 42)  # once: delivered() checks


def test_a_graph_that_needs_lost_values_gets_them_computed_again_recursively() -> None:
    """x and y = f(x) are kept once on node b; z = g(y) is submitted when b
    dies: y's new owner runs y again, which needs x, whose new owner runs it
    again; z gets the right value."""
    r = Router(["a", "b", "c", "d", "e"])
    x = key_owned_by(r, "b", "x")
    y = key_owned_by(r, "b", "y")
    r.submit("a", x, spec(5, replicas=1))
    r.submit("a", y, spec(1, deps=[x], replicas=1))
    alive = list(r.cores)
    settle(r, alive)
    assert holders(r, alive, x) == ["b"] and holders(r, alive, y) == ["b"]
    r.down.add("b")
    alive.remove("b")
    r.view(alive)
    z = "z"
    r.submit("a", z, spec(100, deps=[y]))
    settle(r, alive)
    got = r.delivered("a")
    assert got[x] == (P.OK_MSGPACK, 5) and got[y] == (P.OK_MSGPACK, 6)
    assert got[z] == (P.OK_MSGPACK, 106)
    assert len(holders(r, alive, y)) == 1


def test_a_join_moves_a_kept_result_instead_of_computing_it_again() -> None:
    r = Router(["a", "b", "c"], window=64)
    keys = [f"j{i}" for i in range(40)]
    for k in keys:
        r.submit("a", k, spec(3, replicas=1))
    settle(r, ["a", "b", "c"])
    r.add("d")
    alive = ["a", "b", "c", "d"]
    r.view(alive)
    settle(r, alive)
    moved = [k for k in keys if r.cores["d"].ring.pref(k)[0] == "d"]
    assert moved, "the new node owns some keys"
    for k in moved:
        assert holders(r, alive, k) == ["d"]
        assert sorted(kept(r, alive, k)) == sorted(r.cores["d"].ring.pref(k))
    assert sum(r.cores[n].core.table.metrics.get("exec_lineage_recomputed") for n in alive) == 0
    assert r.cores["d"].completed == 0


def test_releasing_a_replicas_1_key_drops_its_kept_specs() -> None:
    r = Router(["a", "b", "c"])
    r.submit("a", "k", spec(3, replicas=1))
    settle(r, ["a", "b", "c"])
    r.cores["a"].client_messages(1, [encode(Release("k"))])
    r.deliver()
    for n in "abc":
        assert "k" not in r.cores[n].tasks and "k" not in r.cores[n].results


NODES = ["a", "b", "c", "d", "e"]


class Lineage(RuleBasedStateMachine):
    """Graphs of replicas=1 and default keys, node crashes and joins: once
    the mesh settles, every key the client holds resolved once, right."""

    locality_bytes = 4 << 20

    def __init__(self) -> None:
        super().__init__()
        self.router = Router(NODES[:4], window=256)
        self.alive = list(NODES[:4])
        self.local()
        self.expect: dict[str, int] = {}
        self.replicas: dict[str, int] = {}
        self.now = 1.0

    @rule(v=st.integers(0, 50), ndeps=st.integers(0, 2), pick=st.integers(0, 99),
          replicas=st.sampled_from([1, 1, 0]))
    def submit(self, v: int, ndeps: int, pick: int, replicas: int) -> None:
        keys = sorted(self.expect)
        deps = [keys[(pick + i) % len(keys)] for i in range(ndeps)] if keys else []
        deps = sorted(set(deps))
        key = f"k{len(self.expect)}"
        self.router.submit("a", key, spec(v, deps=deps, replicas=replicas))
        self.expect[key] = v + sum(self.expect[d] for d in deps)
        self.replicas[key] = replicas or self.router.replicas

    @rule(node=st.integers(0, 4))
    def run(self, node: int) -> None:
        self.router.run(self.alive[node % len(self.alive)])

    @precondition(lambda self: len(self.alive) > 2)
    @rule(victim=st.integers(1, 4))
    def crash(self, victim: int) -> None:
        name = self.alive[1 + victim % (len(self.alive) - 1)]  # "a" is the client's node
        self.alive.remove(name)
        self.router.down.add(name)
        self.router.view(self.alive)

    @precondition(lambda self: "e" not in self.router.cores)
    @rule()
    def join(self) -> None:
        self.router.add("e")
        self.local()
        self.alive.append("e")
        self.router.view(self.alive)

    def local(self) -> None:
        for core in self.router.cores.values():
            core.core.table.locality_bytes = self.locality_bytes

    @rule()
    def settle_and_check(self) -> None:
        self.now = settle(self.router, self.alive, self.now)
        got = self.router.delivered("a")
        for key, value in self.expect.items():
            assert got.get(key) == (P.OK_MSGPACK, value), key
            # a held key's result is back on R alive nodes (computed again if lost)
            need = min(self.replicas[key], len(self.alive))
            assert len(holders(self.router, self.alive, key)) >= need, key

    @invariant()
    def kept_specs_are_idle(self) -> None:
        for name in self.alive:
            for key, task in self.router.cores[name].tasks.items():
                if task.state == R.KEPT:
                    assert not task.missing and not task.depvals, (name, key)


Lineage.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_lineage_keeps_every_future_right_through_crashes_and_joins = Lineage.TestCase


class LineageAndLocality(Lineage):
    """The same, with every input counted as large: each dependency is
    located, and its dependent runs where it is."""

    locality_bytes = 1


LineageAndLocality.TestCase.settings = settings(max_examples=40, stateful_step_count=25,
                                                deadline=None)
test_lineage_and_locality_keep_every_future_right = LineageAndLocality.TestCase
