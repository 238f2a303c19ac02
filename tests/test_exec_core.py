"""The sans-IO exec core, driven directly: several cores exchange their
messages through an in-memory router; the test plays the executor."""

from __future__ import annotations

import msgpack
import pytest

from mesh.exec import ExecCore, ProtocolViolation
from mesh.exec._effects import ToClient, ToPeer
from mesh.exec._records import HELD, READY, RUNNING
from mesh.metrics import Metrics
from mesh.protocol import payload as P
from mesh.protocol.messages import (
    Ack,
    Done,
    Fetch,
    Lost,
    Release,
    Submit,
    Want,
    decode_client_reply,
    encode,
)

FN = b"fn"  # the core never looks inside a function


def spec(*args: int, deps: list[str] | None = None, retries: int = 0, replicas: int = 0,
         workers: list[str] | None = None) -> list:
    return [FN, P.ARGS_MSGPACK, msgpack.packb(list(args)), deps or [], retries, replicas,
            workers or []]


_INPUTS = {"set_view", "rebalance_step", "tick", "client_messages", "peer_messages",
           "close_session", "outcomes", "steal_from"}


class Driven:
    """A core whose inputs' effects are collected into ``effects`` (the test's
    driver); everything else is the core's."""

    def __init__(self, core: ExecCore) -> None:
        self.core = core
        self.effects: list = []

    def __getattr__(self, name: str):
        attr = getattr(self.core, name)
        if name not in _INPUTS:
            return attr

        def call(*args, **kwargs):
            effects = attr(*args, **kwargs)
            self.effects += effects
            return effects
        return call


class Router:
    """Cores wired together; ``down`` nodes receive nothing. Messages travel
    in their wire form, through the codecs."""

    def __init__(self, names: list[str], replicas: int = 2, window: int = 16) -> None:
        self.replicas = replicas
        self.cores = {n: Driven(ExecCore(n, replicas=replicas, max_crashes=3, metrics=Metrics(),
                                         window=window)) for n in names}
        self.down: set[str] = set()
        self.client_msgs: dict[str, list] = {n: [] for n in names}
        self.fetch_remote = True
        """Whether the clients fetch ``REMOTE`` results at once (as ``result()`` does)."""
        self.view(names)

    def add(self, name: str) -> None:
        self.cores[name] = Driven(ExecCore(name, replicas=self.replicas, max_crashes=3,
                                           metrics=Metrics()))
        self.client_msgs[name] = []

    def view(self, names: list[str]) -> None:
        for n in names:
            self.cores[n].set_view([(m, 1) for m in names], 0.0)
            while self.cores[n].rebalancing():
                self.cores[n].rebalance_step(7)
        self.deliver()

    def deliver(self) -> None:
        """Carry every message; a client told a result is ``REMOTE`` fetches
        its value, as the real client does when ``result()`` needs it."""
        moved = True
        while moved:
            moved = False
            for name in sorted(self.cores):
                core = self.cores[name]
                effects, core.effects = core.effects, []
                for eff in effects:
                    if isinstance(eff, ToClient):
                        got = [decode_client_reply(encode(m)) for m in eff.msgs]
                        self.client_msgs[name] += got
                        fetch = [encode(Fetch(m.key)) for m in got
                                 if isinstance(m, Done) and m.kind == P.REMOTE]
                        if fetch and self.fetch_remote:
                            core.client_messages(eff.sid, fetch)
                            moved = True
                        continue
                    assert isinstance(eff, ToPeer) and eff.dest != name
                    if eff.dest in self.down:
                        continue
                    moved = True
                    self.cores[eff.dest].peer_messages(name, [encode(m) for m in eff.msgs])

    def submit(self, entry: str, key: str, s: list) -> None:
        core = self.cores[entry]
        if 1 not in core.sessions:
            core.open_session(1)
        core.client_messages(1, [encode(Submit(key, *s))])
        self.deliver()

    def run(self, name: str, result: int | None = None, kind: int = P.OK_MSGPACK) -> list[str]:
        """Run every queued job on ``name``; each returns ``result`` (or the
        sum of its arguments and dependency values)."""
        core = self.cores[name]
        jobs, solo = core.take_jobs(1000)
        outs = []
        for tid, _fn, _akind, args, deps in jobs + solo:
            value = result
            if value is None:
                value = sum(msgpack.unpackb(args)) + sum(
                    msgpack.unpackb(p) for _, p in (deps or {}).values())
            outs.append((tid, kind, msgpack.packb(value) if kind != P.CRASHED else b""))
        core.outcomes(outs)
        self.deliver()
        return [o[0] for o in outs]

    def delivered(self, entry: str) -> dict[str, tuple[int, object]]:
        out = {}
        for m in self.client_msgs[entry]:
            if isinstance(m, Done) and m.kind != P.REMOTE:
                assert m.key not in out, f"{m.key} delivered twice"
                value = msgpack.unpackb(m.payload) if m.kind == P.OK_MSGPACK else m.payload
                out[m.key] = (m.kind, value)
        return out


def test_spec_is_held_by_the_preference_list_and_queued_by_the_owner() -> None:
    r = Router(["a", "b", "c"])
    r.submit("a", "k1", spec(1, 2))
    owner, backup = r.cores["a"].ring.pref("k1")
    assert r.cores[owner].tasks["k1"].state == READY
    assert r.cores[backup].tasks["k1"].state == HELD
    third = ({"a", "b", "c"} - {owner, backup}).pop()
    assert "k1" not in r.cores[third].tasks


def test_result_reaches_the_client_only_once_every_replica_holds_it() -> None:
    r = Router(["a", "b", "c"])
    # Find a key whose replicas do not include the entry node "a".
    key = next(f"k{i}" for i in range(100) if "a" not in r.cores["a"].ring.pref(f"k{i}"))
    owner, backup = r.cores["a"].ring.pref(key)
    r.submit("a", key, spec(20, 22))
    r.down.add(backup)  # the store to the backup is lost: no acknowledgement
    r.run(owner)
    assert key not in r.delivered("a")
    assert not r.cores[owner].results[key].confirmed
    r.down.discard(backup)
    r.cores[owner].peer_messages(backup, [encode(Ack(key, backup))])
    r.deliver()
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 42)


def test_backup_runs_the_task_when_its_owner_dies() -> None:
    r = Router(["a", "b", "c"])
    key = next(f"k{i}" for i in range(100) if r.cores["a"].ring.pref(f"k{i}")[0] != "a")
    owner, backup = r.cores["a"].ring.pref(key)
    r.submit("a", key, spec(5))
    r.cores[owner].take_jobs(10)  # it starts running there, then the owner dies
    r.down.add(owner)
    r.view(sorted({"a", "b", "c"} - {owner}))
    assert r.cores[backup].tasks[key].state == READY
    r.run(backup)
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 5)


def test_task_that_crashes_its_worker_three_times_is_killed() -> None:
    r = Router(["a"])
    r.submit("a", "k", spec(1))
    for attempt in range(2):
        jobs, solo = r.cores["a"].take_jobs(10)
        assert (len(jobs), len(solo)) == ((1, 0) if attempt == 0 else (0, 1))
        r.cores["a"].outcomes([("k", P.CRASHED, b"")])
    r.run("a", kind=P.CRASHED)
    kind, msg = r.delivered("a")["k"]
    assert kind == P.KILLED
    assert b"'k'" in msg and b"3 times" in msg


def test_retries_requeue_a_task_that_raised() -> None:
    r = Router(["a"])
    r.submit("a", "k", spec(1, retries=1))
    err = P.dumps_error(ValueError("x"))
    r.cores["a"].take_jobs(10)
    r.cores["a"].outcomes([("k", *err)])
    r.deliver()
    assert "k" not in r.delivered("a")  # the error was not delivered: the task runs again
    task = r.cores["a"].tasks["k"]
    assert (task.state, task.tries) == (READY, 1)
    r.cores["a"].take_jobs(10)
    r.cores["a"].outcomes([("k", *err)])
    r.deliver()
    assert r.delivered("a")["k"][0] == P.ERROR


def test_dependent_runs_with_its_dependencies_values() -> None:
    r = Router(["a", "b", "c"])
    r.submit("a", "x", spec(1))
    r.submit("a", "y", spec(2))
    r.submit("a", "z", spec(100, deps=["x", "y"]))
    for _ in range(3):
        for n in ("a", "b", "c"):
            r.run(n)
    assert r.delivered("a")["z"] == (P.OK_MSGPACK, 103)


def test_failed_dependency_fails_the_dependent_without_running_it() -> None:
    r = Router(["a", "b"])
    r.submit("a", "x", spec(1))
    r.submit("a", "z", spec(1, deps=["x"]))
    err = P.dumps_error(ValueError("dep"))
    for n in ("a", "b"):
        core = r.cores[n]
        jobs, _ = core.take_jobs(10)
        core.outcomes([(j[0], *err) for j in jobs])
        r.deliver()
    got = r.delivered("a")
    assert got["x"][0] == got["z"][0] == P.ERROR


def test_release_drops_stored_results_and_queued_tasks() -> None:
    r = Router(["a", "b"])
    r.submit("a", "done", spec(1))
    r.submit("a", "queued", spec(2))
    owner = r.cores["a"].ring.pref("done")[0]
    jobs, _ = r.cores[owner].take_jobs(10)
    r.cores[owner].outcomes([(j[0], P.OK_MSGPACK, msgpack.packb(0)) for j in jobs
                             if j[0] == "done"])
    r.deliver()
    for key in ("done", "queued"):
        r.cores["a"].client_messages(1, [encode(Release(key))])
    r.deliver()
    for core in r.cores.values():
        assert "done" not in core.results
        assert "queued" not in core.tasks or core.tasks["queued"].state == RUNNING



@pytest.mark.parametrize(("names", "replicas", "thief_is_entry"), [
    (["a", "b", "c", "d"], 2, False),  # the thief is no holder and no subscriber
    (["a", "b", "c"], 2, True),  # the thief is the subscriber itself
    (["a", "b"], 1, False),  # the subscriber is the only holder
])
def test_a_release_that_overtakes_a_thiefs_store_leaves_nothing(
        names: list[str], replicas: int, thief_is_entry: bool) -> None:
    r = Router(names, replicas=replicas)
    ring = r.cores["a"].ring
    # With two replicas the entry "a" holds nothing of the key; with one it is its holder.
    key = next(f"k{i}" for i in range(200) if ("a" in ring.pref(f"k{i}")) == (replicas == 1))
    owner = ring.pref(key)[0]
    thief = "a" if thief_is_entry else sorted(set(names) - {"a", *ring.pref(key)})[0]
    r.submit("a", key, spec(1))
    r.cores[thief].steal_from(owner, 1)
    r.deliver()
    assert r.cores[owner].tasks[key].thief == thief
    # The client releases the key: its holders drop the spec, but the thief
    # (outside the key's list) runs it and stores the result on them.
    r.cores["a"].client_messages(1, [encode(Release(key))])
    r.deliver()
    assert r.run(thief) == [key]
    left = {n: (key in c.results, key in c.tasks) for n, c in r.cores.items()}
    assert left == dict.fromkeys(names, (False, False))



def test_a_late_request_from_a_node_that_left_the_view_subscribes_nothing() -> None:
    r = Router(["a", "b", "c"])
    key = next(f"k{i}" for i in range(100) if r.cores["a"].ring.pref(f"k{i}") == ("a", "b"))
    r.submit("a", key, spec(1))
    r.run("a")
    r.down.add("c")
    r.view(["a", "b"])
    # c asked for the key before it died (or was cut off): the request arrives now.
    for n in ("a", "b"):
        r.cores[n].peer_messages("c", [encode(Want(key, "c"))])
    r.deliver()
    r.cores["a"].client_messages(1, [encode(Release(key))])
    r.deliver()
    assert all(key not in r.cores[n].results for n in ("a", "b"))


def test_a_handed_over_result_nobody_subscribes_to_expires_after_the_grace() -> None:
    r = Router(["a", "b", "c"], window=64)
    keys = [f"k{i}" for i in range(40) if "a" not in r.cores["a"].ring.pref(f"k{i}")]
    for k in keys:
        r.submit("a", k, spec(1))
    for n in ("b", "c"):
        r.run(n)
    r.down.add("a")  # the only subscriber dies: its results are orphaned
    r.view(["b", "c"])
    r.add("d")
    r.view(["b", "c", "d"])
    assert r.cores["d"].results  # handed over, with no subscriber
    for n in ("b", "c", "d"):
        r.cores[n].tick(10_000.0)
    r.deliver()
    assert {n: sorted(r.cores[n].results) for n in "bcd"} == {n: [] for n in "bcd"}


def test_a_joining_node_receives_the_keys_it_now_holds() -> None:
    r = Router(["a", "b"], window=64)
    keys = [f"k{i}" for i in range(40)]
    for k in keys:
        r.submit("a", k, spec(1))
    r.add("c")
    r.view(["a", "b", "c"])
    moved = [k for k in keys if "c" in r.cores["a"].ring.pref(k)]
    assert moved
    for k in moved:
        assert k in r.cores["c"].tasks
    for n in ("a", "b", "c"):
        r.run(n)
    assert sorted(r.delivered("a")) == sorted(keys)


def test_a_client_beyond_its_credit_violates_the_protocol() -> None:
    r = Router(["a"], window=2)
    r.submit("a", "k1", spec(1))
    r.submit("a", "k2", spec(2))
    with pytest.raises(ProtocolViolation, match="credit"):
        r.submit("a", "k3", spec(3))


def test_malformed_peer_messages_are_a_protocol_violation() -> None:
    core = ExecCore("a", replicas=2, max_crashes=3, metrics=Metrics())
    for bad in (["zz"], ["t", "k"], ["s", 1]):
        with pytest.raises(ProtocolViolation):
            core.peer_messages("b", [bad])


def test_a_delivered_key_keeps_no_spec_and_a_lost_one_is_asked_of_its_client() -> None:
    """The entry node drops a held key's spec (its arguments) once the result
    is delivered; when every copy of that result is lost and a dependent needs
    it, the node tells the client (``Lost``), whose resubmission runs it again."""
    r = Router(["a", "b", "c"], replicas=1)
    key = next(k for k in (f"x{i}" for i in range(100))
               if r.cores["a"].table.ring.pref(k) == ("b",))
    r.submit("a", key, spec(20, 22))
    assert r.run("b") == [key]
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 42)
    assert r.cores["a"].table.specs == {}  # the client keeps the spec, not the node
    r.down.add("b")  # the only copy of the result dies with b
    r.view(["a", "c"])
    r.submit("a", "y", spec(1, deps=[key]))
    for now in (10.0, 20.0):
        for core in r.cores.values():
            core.tick(now)
        r.deliver()
    lost = [m for m in r.client_msgs["a"] if isinstance(m, Lost)]
    assert lost == [Lost(key)]
    r.submit("a", key, spec(20, 22))  # what the client does on Lost
    ran = [k for _ in range(2) for n in ("a", "c") for k in r.run(n)]
    assert sorted(ran) == [key, "y"]  # the lost key ran again, then its dependent
    done = [m for m in r.client_msgs["a"] if isinstance(m, Done)]
    # the resubmission is answered too (it returns the client's credit)
    assert [m.key for m in done] == [key, key, "y"]
    assert msgpack.unpackb(done[-1].payload) == 43
    assert r.cores["a"].table.specs == {}


def test_with_one_replica_the_result_reaches_an_entry_node_that_does_not_hold_it() -> None:
    r = Router(["a", "b", "c"], replicas=1)
    key = next(k for k in (f"k{i}" for i in range(100))
               if r.cores["a"].table.ring.pref(k) != ("a",))
    r.submit("a", key, spec(20, 22))
    r.run(r.cores["a"].table.ring.pref(key)[0])
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 42)


def _held_for_a(r: Router) -> tuple[str, list[str]]:
    """A key submitted at "a", which is not one of its holders, and run."""
    key = next(f"k{i}" for i in range(100) if "a" not in r.cores["a"].ring.pref(f"k{i}"))
    holders = list(r.cores["a"].ring.pref(key))
    r.submit("a", key, spec(7))
    r.run(holders[0])
    assert r.delivered("a")[key] == (P.OK_MSGPACK, 7)
    return key, holders


def _recheck(r: Router, holders: list[str]) -> None:
    for now in (0.0, 16.0):  # the first tick starts the period, the next asks
        for h in holders:
            r.cores[h].tick(now)
        r.deliver()


def test_a_release_lost_on_the_way_is_found_by_the_holders_recheck() -> None:
    r = Router(["a", "b", "c"])
    key, holders = _held_for_a(r)
    r.down |= set(holders)  # "a" releases while its holders hear nothing
    r.cores["a"].client_messages(1, [encode(Release(key))])
    r.deliver()
    r.down.clear()
    for h in holders:
        r.cores[h].tick(0.0)
        r.cores[h].tick(10.0)  # within the recheck period: nobody is asked yet
    r.deliver()
    assert all(key in r.cores[h].results for h in holders)
    _recheck(r, holders)
    assert not any(key in core.results or key in core.tasks for core in r.cores.values())


def test_a_restarted_subscriber_releases_what_its_previous_life_held() -> None:
    r = Router(["a", "b", "c"])
    key, holders = _held_for_a(r)
    r.add("a")  # "a" restarts under the same name, with no state, unnoticed
    r.view(["a", "b", "c"])
    assert all(key in r.cores[h].results for h in holders)
    _recheck(r, holders)
    assert not any(key in core.results for core in r.cores.values())


def test_a_recheck_keeps_what_the_subscriber_still_holds() -> None:
    r = Router(["a", "b", "c"])
    key, holders = _held_for_a(r)
    _recheck(r, holders)
    assert all(r.cores[h].results[key].subs == {"a"} for h in holders)
