"""Actor calls straight to the host, and large results and arguments as
values, on real ``mesh join`` processes (3 nodes)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from mesh import Client
from tests.procs import Cluster, MeshProc, metrics
from tests.test_client_real import start_mesh

MIB = 1 << 20


class Store:
    def __init__(self) -> None:
        self.n = 0
        self.seen = 0

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def array(self, mib: int, fill: float) -> np.ndarray:
        self.n += 1
        return np.full(mib * MIB // 8, fill)

    def total(self, a: np.ndarray) -> float:
        self.seen += 1
        return float(a.sum())


@pytest.fixture(scope="module")
def mesh3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MeshProc]]:
    cluster = Cluster(tmp_path_factory.mktemp("direct3"))
    try:
        yield start_mesh(cluster)
    finally:
        cluster.close()


def _elsewhere(client: Client, durable: bool) -> tuple[object, str]:
    """An actor hosted by a node other than the client's, and its host."""
    for _ in range(64):
        a = client.actor(Store, durable=durable)
        host = client.who_has(a)[a.key][0]  # type: ignore[attr-defined]
        if host != client.node:
            return a, host
        a.close()  # type: ignore[attr-defined]
    raise AssertionError("placement never chose another node in 64 actors")


@pytest.mark.parametrize("durable", [True, False])
def test_calls_go_straight_to_the_host_not_through_the_clients_node(
        mesh3: list[MeshProc], durable: bool) -> None:
    with Client(mesh3[0].bind) as client:
        a, host = _elsewhere(client, durable)
        a.incr().result(timeout=30)  # type: ignore[attr-defined]
        before = metrics(mesh3[0].addr).get("actor_relays", 0)
        got = client.gather([a.incr() for _ in range(300)], timeout=60)  # type: ignore[attr-defined]
        assert got == list(range(2, 302))  # in order, each applied once
        assert metrics(mesh3[0].addr).get("actor_relays", 0) == before  # no hop through it
        route = client._core.direct.routes[host]
        assert route.channel is not None and not route.pending


def test_a_broken_route_sends_its_calls_through_the_clients_node(mesh3: list[MeshProc]) -> None:
    with Client(mesh3[0].bind) as client:
        a, host = _elsewhere(client, True)
        a.incr().result(timeout=30)  # type: ignore[attr-defined]
        direct = client._core.direct
        route = direct.routes[host]
        before = metrics(mesh3[0].addr).get("actor_relays", 0)
        futs = [a.incr() for _ in range(500)]  # type: ignore[attr-defined]
        client._core.loop.call_soon_threadsafe(direct._fail, route, "the test broke it")
        assert client.gather(futs, timeout=60) == list(range(2, 502))  # once each, in order
        assert a.incr().result(timeout=30) == 502  # type: ignore[attr-defined]
        assert route.dead and host in direct.refused  # until the view changes
        assert metrics(mesh3[0].addr).get("actor_relays", 0) > before


@pytest.mark.parametrize("durable", [True, False])
def test_a_large_result_comes_through_the_store(mesh3: list[MeshProc], durable: bool) -> None:
    with Client(mesh3[0].bind) as client:
        a, host = _elsewhere(client, durable)
        node = next(p for p in mesh3 if p.name == host)
        before = metrics(node.addr).get("actor_results_stored", 0)
        f = a.array(16, 2.5)  # type: ignore[attr-defined]
        got = f.result(timeout=60)
        assert got.shape == (2 * MIB,) and float(got[0]) == 2.5 and float(got[-1]) == 2.5
        assert metrics(node.addr).get("actor_results_stored", 0) == before + 1
        assert a.incr(0).result(timeout=30) == 1  # type: ignore[attr-defined]
        f.release()


def test_a_large_argument_travels_as_a_scattered_value(mesh3: list[MeshProc]) -> None:
    with Client(mesh3[0].bind) as client:
        a, _host = _elsewhere(client, True)
        big = np.ones(16 * MIB // 8)
        assert a.total(big).result(timeout=60) == float(len(big))  # type: ignore[attr-defined]
