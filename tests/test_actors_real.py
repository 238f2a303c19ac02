"""Actors on real ``mesh join`` processes: calls, names, handles in tasks, bad
input, and the kill -9 of an actor's host in the middle of 5,000 calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from mesh import ActorLost, AsyncClient, Client
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


def test_futures_cannot_cross_between_actor_calls_and_tasks_yet(client: Client) -> None:
    c = client.actor(Counter)
    with pytest.raises(TypeError, match="actor call's future cannot be an argument"):
        client.submit(abs, c.incr(), pure=False)
    with pytest.raises(TypeError, match="futures cannot be arguments of actor calls"):
        c.incr(client.submit(abs, -1, pure=False))
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
            await c.close()

    asyncio.run(main())


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
