"""Workloads: the work a simulated cluster does while faults roll.

A workload plugs into :class:`sim.runner.Simulation` (the one cluster harness)
through four calls, and checks its own invariants:

* :meth:`Workload.services` -- the services a node runs, for each node life;
* :meth:`Workload.begin` -- schedule its clients (before virtual time starts);
* :meth:`Workload.stop` -- close its clients (before the nodes stop);
* :meth:`Workload.invariants` -- its verdicts, judged at the end of the run.

A workload whose executors write values into the node's spill directory (as
``mesh join`` shares ``--spill-dir`` with its workers) names each node life's
directory in an optional ``spill_of`` dict, ``{(i, life): SpillDir}``, filled
by :meth:`Workload.services`; the harness gives it to that node.

It observes the cluster through the harness's hooks (``Simulation.on_start``,
``Simulation.on_crash``) and the public surface of the code under test, never
by replacing methods. ``gossip`` runs nothing but membership; ``tasks`` is in
:mod:`sim.workloads.tasks`, ``data`` (large values) in :mod:`sim.workloads.data`.
The dataset and actor workloads add themselves to :data:`WORKLOADS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from mesh.errors import ConfigError
from sim.invariants import Invariant

if TYPE_CHECKING:
    from sim.runner import Simulation
    from sim.runtime import SimRuntime

__all__ = ["WORKLOADS", "GossipWorkload", "Workload", "connect_client", "make"]


class Workload(Protocol):
    name: str

    def services(self, i: int, runtime: SimRuntime, life: int) -> list[Any]:
        """The services node ``i`` runs in this life (a fresh set per start)."""

    def begin(self) -> None:
        """Called once, before virtual time starts."""

    async def stop(self) -> None:
        """Called once at the end, before the nodes stop."""

    def invariants(self, end: float) -> list[Invariant]:
        """Verdicts at virtual time ``end``."""


class GossipWorkload:
    """Membership only: the gossip invariants of :class:`sim.invariants.Observer`."""

    name = "gossip"

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def services(self, i: int, runtime: SimRuntime, life: int) -> list[Any]:
        return []

    def begin(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def invariants(self, end: float) -> list[Invariant]:
        return []


async def connect_client(sim: Simulation, rt: SimRuntime, rng: Any, client_id: str,
                         secret: bytes, reconnect_timeout: float) -> Any:
    """A started :class:`mesh.client.AsyncClient` on the client host of
    ``rt``, whose address list starts at a node ``rng`` picks (so clients
    spread over the nodes)."""
    from mesh.client import AsyncClient

    addrs = [f"{h}:{p}" for h, p in (sim.hosts[i].addr for i in range(sim.n))]
    k = rng.randrange(sim.n)
    client = AsyncClient(addrs[k:] + addrs[:k], secret=secret, runtime=rt,
                         client_id=client_id, connect_timeout=2.0,
                         reconnect_timeout=reconnect_timeout)
    await client.start()
    return client


async def start_client(w: Any, c: int, kind: str, client_id: str, secret: bytes,
                       reconnect_timeout: float) -> tuple[Any, Any, Any]:
    """Client ``c`` of workload ``w`` (which has ``sim``, ``client_hosts``,
    ``t0`` and ``clients``): ``(client, runtime, rng)``. Its runtime runs on
    its client host, its random stream is ``seed:kind:c``; it starts at
    ``w.t0 + c * 0.5``, connects (:func:`connect_client`) and joins
    ``w.clients``."""
    import random

    from sim.runtime import SimRuntime, node_rng

    sim = w.sim
    host = w.client_hosts[c]
    rt = SimRuntime(sim.net, host, node_rng(sim.seed, host.name))
    rng = random.Random(f"{sim.seed}:{kind}:{c}")
    await rt.sleep(w.t0 + c * 0.5)
    client = await connect_client(sim, rt, rng, client_id, secret, reconnect_timeout)
    w.clients.append(client)
    return client, rt, rng


def _tasks(sim: Simulation) -> Workload:
    from sim.workloads.tasks import TasksWorkload

    return TasksWorkload(sim)


def _datasets(sim: Simulation) -> Workload:
    from sim.workloads.datasets import DatasetsWorkload

    return DatasetsWorkload(sim)


def _data(sim: Simulation) -> Workload:
    from sim.workloads.data import DataWorkload

    return DataWorkload(sim)


def _actors(sim: Simulation) -> Workload:
    from sim.workloads.actors import ActorsWorkload

    return ActorsWorkload(sim)


WORKLOADS: dict[str, Callable[[Simulation], Workload]] = {
    "gossip": GossipWorkload,
    "tasks": _tasks,
    "datasets": _datasets,
    "data": _data,
    "actors": _actors,
}


def make(name: str, sim: Simulation) -> Workload:
    """The workload called ``name`` for ``sim``. Raises ConfigError."""
    factory = WORKLOADS.get(name)
    if factory is None:
        raise ConfigError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}")
    return factory(sim)
