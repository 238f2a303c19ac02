"""Actors on real ``mesh join`` processes: calls, names, handles in tasks, bad
input, the kill -9 of an actor's host in the middle of 5,000 calls, and
futures: task futures (small and large) and actor calls' futures as
arguments of actor calls and of tasks, the per-handle order a call waiting
for a value keeps, and ``who_has`` of futures."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh import ActorLost, AsyncClient, Client
from mesh.actors._handle import ActorHandle
from tests.procs import Cluster, MeshProc, api, wait_until
from tests.test_client_real import start_mesh


class Counter:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def fail_after(self, k: int) -> None:
        self.n += k
        raise RuntimeError(f"failed at {self.n}")

    def hold_lock(self) -> int:
        self.lock = threading.Lock()
        return self.n

    def slow_incr(self) -> int:
        time.sleep(0.005)
        return self.incr()

    async def aincr(self) -> int:
        self.n += 1
        return self.n


class Gate:
    """Async calls that wait for a later call (a durable, picklable state)."""

    def __init__(self) -> None:
        self.opened = 0
        self.log: list[str] = []

    async def wait(self, name: str) -> list[str]:
        self.log.append(f"{name} waits")
        while not self.opened:
            await asyncio.sleep(0.005)
        self.log.append(f"{name} through")
        return list(self.log)

    def open(self) -> int:
        self.opened += 1
        self.log.append("open")
        return self.opened

    def seen(self) -> list[str]:
        return list(self.log)


def use_counter(handle, k):  # type: ignore[no-untyped-def]
    """A task that calls an actor through a handle passed as its argument."""
    return handle.incr(k).result(timeout=30)


@pytest.fixture(scope="module")
def mesh3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MeshProc]]:
    cluster = Cluster(tmp_path_factory.mktemp("actors3"))
    try:
        yield start_mesh(cluster)
    finally:
        cluster.close()


@pytest.fixture
def client(mesh3: list[MeshProc]) -> Iterator[Client]:
    with Client([p.bind for p in mesh3]) as c:
        yield c


def test_calls_from_one_handle_run_in_the_order_made(client: Client) -> None:
    c = client.actor(Counter, 10)
    assert c.incr(5).result(timeout=30) == 15
    futs = [c.incr() for _ in range(1000)]
    assert client.gather(futs, timeout=60) == list(range(16, 1016))
    c.close()


def test_who_has_names_the_host_first_then_the_replicas(client: Client,
                                                       mesh3: list[MeshProc]) -> None:
    c = client.actor(Counter, replicas=3)
    c.incr().result(timeout=30)
    nodes = client.who_has(c)[c.key]
    assert sorted(nodes) == sorted(p.name for p in mesh3)
    host = next(p for p in mesh3 if p.name == nodes[0])
    assert api(host.addr, "/v1/actors/stats")["actors"][c.key]["role"] == "host"
    c.close()


def test_a_named_actor_is_made_once_and_found_from_a_second_client(
        client: Client, mesh3: list[MeshProc]) -> None:
    hits = client.actor(Counter, name="hits")
    again = client.actor(Counter, 100, name="hits")  # exists: the same actor
    assert hits.incr().result(timeout=30) == 1
    assert again.incr().result(timeout=30) == 2
    with Client(mesh3[2].bind) as other:
        found = other.get_actor("hits")
        assert found.incr().result(timeout=30) == 3
        with pytest.raises(ValueError, match="no actor named 'nobody'"):
            other.get_actor("nobody")
    hits.close()


def test_a_handle_passed_into_a_task_calls_the_same_actor(client: Client) -> None:
    c = client.actor(Counter, name="shared-by-tasks")
    futs = [client.submit(use_counter, c, 1, pure=False) for _ in range(5)]
    assert sorted(client.gather(futs, timeout=60)) == [1, 2, 3, 4, 5]
    assert c.incr(0).result(timeout=30) == 5
    c.close()


def test_a_future_of_another_client_is_refused_as_a_call_argument(
        client: Client, mesh3: list[MeshProc]) -> None:
    c = client.actor(Counter)
    with Client([p.bind for p in mesh3]) as other, pytest.raises(
            ValueError, match="belongs to another client"):
        c.incr(other.submit(abs, -1, pure=False))
    c.close()


def test_a_missing_method_fails_its_future_with_attribute_error(client: Client) -> None:
    c = client.actor(Counter, 1)
    with pytest.raises(AttributeError, match="nope"):
        c.nope().result(timeout=30)
    assert c.incr().result(timeout=30) == 2
    c.close()


def test_a_raising_method_keeps_the_state_it_left(client: Client) -> None:
    c = client.actor(Counter, 1)
    with pytest.raises(RuntimeError, match="failed at 4") as info:
        c.fail_after(3).result(timeout=30)
    assert "fail_after" in str(info.value.__cause__)  # the remote traceback
    assert c.incr().result(timeout=30) == 5
    c.close()


def test_unpicklable_state_fails_the_call_with_type_error_and_keeps_the_actor(
        client: Client) -> None:
    c = client.actor(Counter, 7)
    with pytest.raises(TypeError, match="attribute 'lock' of type lock"):
        c.hold_lock().result(timeout=30)
    assert c.incr().result(timeout=30) == 8  # the state before the failed call
    v = client.actor(Counter, 7, durable=False)  # volatile: nothing to replicate
    assert v.hold_lock().result(timeout=30) == 7
    c.close()
    v.close()


def test_calls_to_a_closed_actor_fail_with_actor_lost(client: Client) -> None:
    c = client.actor(Counter)
    c.close()
    with pytest.raises(ActorLost):
        c.incr().result(timeout=30)


def test_the_async_client_awaits_actors_and_their_calls(mesh3: list[MeshProc]) -> None:
    import asyncio

    async def main() -> None:
        async with AsyncClient([p.bind for p in mesh3]) as ac:
            c = await ac.actor(Counter, 3, name="async-counter")
            assert await c.incr() == 4
            assert await c.aincr() == 5
            again = await ac.get_actor("async-counter")
            assert await again.incr(10) == 15
            assert list((await ac.who_has(c)).keys()) == [c.key]
            f = ac.submit(abs, -4)
            assert await ac.submit(abs, c.incr(f)) == 19  # futures cross both ways
            held = (await ac.who_has([f]))[f.key]
            assert held and set(held) <= {p.name for p in mesh3}
            await c.close()

    asyncio.run(main())


@pytest.mark.parametrize("durable", [True, False])
def test_async_methods_interleave_at_their_awaits(client: Client, durable: bool) -> None:
    g = client.actor(Gate, durable=durable)
    a, b = g.wait("a"), g.wait("b")  # both suspend: neither can finish before open()
    assert g.open().result(timeout=30) == 1
    got = a.result(timeout=30)
    assert got[:3] == ["a waits", "b waits", "open"] and "a through" in got
    assert "b through" in b.result(timeout=30)
    assert g.seen().result(timeout=30)[-2:] in (["a through", "b through"],
                                                ["b through", "a through"])
    g.close()


def _host(client: Client, c: object, nodes: list[MeshProc]) -> MeshProc:
    name = client.who_has(c)[c.key][0]  # type: ignore[attr-defined]
    return next(p for p in nodes if p.name == name)


def test_kill_9_of_the_host_mid_5000_calls_applies_each_exactly_once(cluster: Cluster) -> None:
    nodes = start_mesh(cluster, 3)
    with Client([p.bind for p in nodes]) as probe:
        c0 = probe.actor(Counter, 1000, name="survivor")
        host = _host(probe, c0, nodes)
    others = [p for p in nodes if p is not host]
    with Client([p.bind for p in others]) as client:
        c = client.get_actor("survivor")
        futs = [c.incr() for _ in range(5000)]
        wait_until(lambda: sum(f.done() for f in futs) >= 300, 60, "calls to be under way")
        assert sum(f.done() for f in futs) < 5000
        host.popen.kill()
        host.popen.wait(10)
        got = client.gather(futs, timeout=120)
        assert got == list(range(1001, 6001))  # in order, each applied exactly once
        assert c.incr(0).result(timeout=30) == 6000
        assert _host(client, c, others).name != host.name


def test_kill_9_of_a_volatile_actors_host_restarts_it_and_fails_calls_in_flight(
        cluster: Cluster) -> None:
    nodes = start_mesh(cluster, 3)
    with Client([p.bind for p in nodes]) as probe:
        v0 = probe.actor(Counter, 50, name="volatile", durable=False)
        host = _host(probe, v0, nodes)
    others = [p for p in nodes if p is not host]
    with Client([p.bind for p in others]) as client:
        v = client.get_actor("volatile")
        futs = [v.slow_incr() for _ in range(3000)]
        wait_until(lambda: sum(f.done() for f in futs) >= 20, 60, "calls to be under way")
        host.popen.kill()
        host.popen.wait(10)
        values, lost = [], 0
        for f in futs:
            err = f.exception(timeout=120)
            if err is None:
                values.append(f.result())
            else:
                assert isinstance(err, ActorLost), err
                lost += 1
        assert lost > 0
        restart = next((i for i in range(1, len(values)) if values[i] <= values[i - 1]),
                       len(values))
        before, after = values[:restart], values[restart:]
        assert before == list(range(51, 51 + len(before)))  # the first life
        assert after == list(range(51, 51 + len(after)))  # from the constructor again
        assert v.incr(0).result(timeout=30) == 50 + len(after)


# ---------------------------------------------------- futures and actors


class Acc:
    def __init__(self, start: int = 0) -> None:
        self.n = start

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def add(self, *values: int) -> int:
        self.n += sum(values)
        return self.n

    def size(self, blob: bytes) -> int:
        self.n += 1
        return len(blob)

    def get(self) -> int:
        return self.n


def inc(x: int) -> int:
    return x + 1


def boom(x: int) -> int:
    raise ValueError(f"no {x}")


def blob(n: int) -> bytes:
    return bytes(n)


def after_file(path: str, value: int) -> int:
    """A task that returns once ``path`` exists (the test creates it)."""
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)
    return value


def test_a_task_future_is_an_actor_call_argument(client: Client) -> None:
    c = client.actor(Acc, 10)
    f = client.submit(inc, 4)
    assert c.add(f, client.submit(inc, 0)).result(timeout=30) == 16
    assert c.add(f).result(timeout=30) == 21  # the same future again
    c.close()


def test_a_large_value_reaches_the_actor_through_the_store(client: Client) -> None:
    c = client.actor(Acc, durable=False)
    big = client.submit(blob, 24 << 20)  # above oob_threshold: kept in the store, streamed
    assert c.size(big).result(timeout=60) == 24 << 20
    c.close()


def test_an_actor_calls_future_is_an_argument_of_another_actor_and_of_a_task(
        client: Client) -> None:
    a = client.actor(Acc, 100)
    b = client.actor(Acc, 0)
    fa = a.incr()  # 101
    assert b.add(fa).result(timeout=30) == 101
    assert a.add(a.incr()).result(timeout=30) == 102 + 102  # its own earlier call
    assert client.submit(inc, b.incr(5)).result(timeout=30) == 107
    assert client.gather(client.map(inc, [a.get(), b.get()]), timeout=30) == [205, 107]
    a.close()
    b.close()


def test_a_failed_input_fails_the_call_and_leaves_the_state(client: Client) -> None:
    c = client.actor(Acc, 5)
    with pytest.raises(ValueError, match="no 3"):
        c.add(client.submit(boom, 3)).result(timeout=30)
    assert c.get().result(timeout=30) == 5
    c.close()


def test_a_call_waiting_for_a_value_holds_back_its_handle_not_others(
        client: Client, tmp_path: Path) -> None:
    c = client.actor(Acc, 0)
    other = ActorHandle(client._core, c.key, True)  # a second caller of the same actor
    gate = tmp_path / "gate"
    waiting = c.add(client.submit(after_file, str(gate), 10, pure=False))
    behind = c.incr()
    assert other.incr(100).result(timeout=30) == 100  # not held back
    assert not waiting.done() and not behind.done()
    gate.touch()
    assert waiting.result(timeout=30) == 110
    assert behind.result(timeout=30) == 111  # after it: the order of its handle
    c.close()


def test_who_has_names_the_holders_of_task_results(client: Client,
                                                   mesh3: list[MeshProc]) -> None:
    names = {p.name for p in mesh3}
    f = client.submit(inc, 41, replicas=2)
    assert f.result(timeout=30) == 42
    got = wait_until(lambda: client.who_has([f])[f.key], 30, "the holders of a result")
    assert len(got) == 2 and set(got) <= names
    c = client.actor(Acc)
    call = c.incr()
    client.submit(inc, call).result(timeout=30)  # published: stored under the call's key
    both = client.who_has([call, c])
    assert set(both[call.key]) <= names and both[call.key]
    assert both[c.key][0] in names
    c.close()
