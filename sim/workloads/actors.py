"""The ``actors`` workload: durable actors called while faults roll.

Every node runs the real :class:`mesh.exec.ExecService` and
:class:`mesh.actors._service.ActorService`, its actors applied in-process
(:class:`mesh.actors._procs.InlineActors`). Two simulated clients (real
:class:`mesh.client.AsyncClient` objects) each make a durable counter, get a
second handle on it by name (their calls go straight to the actor's host,
:mod:`mesh.actors._direct`, unless a future is among their arguments), and
work in rounds: both handles send a burst of
``incr(k)`` calls (``k`` from 1 to 9) without waiting, the round waits for
all of them, then reads the count with ``incr(0)``. Some ``k`` come as
futures: of a task (``same(k)``) or of a call to the client's other actor
(``echo(k)``), whose value the host fetches through the exec layer while the
call holds back its handle's later calls. Now and then the workload kills
the worker of an actor's host, as a crashing process would.

Invariants, judged from what the clients see:

* ``actors_resolve``: every call's future resolves, by the end of its round
  (``inconclusive`` in safety mode, whose faults last to the end);
* ``actors_resolved_once``: none resolves twice;
* ``actors_no_call_lost``: none fails (a durable actor loses no call);
* ``actors_exactly_once``: every read equals the sum of every ``k`` sent
  before it (no call lost, none applied twice), each handle's answers rise
  in the order it made its calls, and no two calls saw the same count.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

from mesh.actors._procs import InlineActors
from mesh.actors._service import ActorService
from mesh.client import AsyncClient
from mesh.exec import ExecService
from sim.executor import SimExecutor
from sim.invariants import Invariant
from sim.runner import SECRET
from sim.runtime import SimRuntime

if TYPE_CHECKING:
    from mesh.client import Future
    from sim.runner import Simulation

__all__ = ["ActorsWorkload"]

CLIENTS = 2
QUIET_END = 20.0
REPLICAS = 3
"""Holders of each actor: the rolling faults may take two nodes at once (a
crash during a partition), and R nodes survive R - 1 failures."""


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def incr(self, k: int = 1) -> int:
        self.n += k
        return self.n

    def echo(self, k: int) -> int:
        return k


def same(k: int) -> int:
    return k


class ActorsWorkload:
    name = "actors"

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.workers: list[InlineActors | None] = [None] * sim.n
        self.services_of: list[ActorService | None] = [None] * sim.n
        self.clients: list[AsyncClient] = []
        self.calls = 0
        self.resolved: dict[str, int] = {}
        self.unresolved: list[str] = []
        self.failed: list[str] = []
        self.wrong: list[str] = []
        self.finished = [False] * CLIENTS
        self.worker_crashes = 0
        spread = sim.scenario.spread()
        _, fault_end = sim.scenario.window()
        self.t0 = spread + 3.0
        self.work_end = max(self.t0 + 5.0, min(fault_end + 5.0,
                                               sim.scenario.duration - QUIET_END))
        self.round_timeout = max(20.0, sim.scenario.duration - QUIET_END / 2 - self.t0)
        self.client_hosts = [sim.net.add_host((f"10.255.1.{c + 1}", 7000), f"aclient{c}")
                             for c in range(CLIENTS)]
        sim.on_crash.append(self._crashed)

    # --- the harness's calls --------------------------------------------------------
    def services(self, i: int, runtime: SimRuntime, life: int) -> list[Any]:
        name = self.sim.hosts[i].name
        ex = SimExecutor(runtime, random.Random(f"{self.sim.seed}:{name}:{life}:exec"))
        workers = InlineActors(call_soon=lambda fn: runtime.call_later(0.0, fn))
        svc = ActorService(workers)
        self.workers[i] = workers
        self.services_of[i] = svc
        return [ExecService(ex, window=64), svc]

    def _crashed(self, i: int) -> None:
        self.workers[i] = None
        self.services_of[i] = None

    def begin(self) -> None:
        for c in range(CLIENTS):
            self.sim._spawn(self._client(c), f"aclient{c}")

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients = []

    # --- the clients ----------------------------------------------------------------
    async def _client(self, c: int) -> None:
        from sim.workloads import start_client

        sim = self.sim
        via = random.Random(f"{sim.seed}:actors:{c}:args")  # its own stream: the calls
        # and their timing draw from ``rng`` as they would without futures
        client, rt, rng = await start_client(self, c, "actors", f"sim{sim.seed}a{c}", SECRET,
                                             self.round_timeout)
        name = f"counter{c}"
        try:
            first = await asyncio.wait_for(client.actor(Counter, name=name, replicas=REPLICAS),
                                           self.round_timeout)
            second = await asyncio.wait_for(client.get_actor(name), self.round_timeout)
            echo = await asyncio.wait_for(client.actor(Counter, replicas=REPLICAS),
                                          self.round_timeout)
        except (TimeoutError, ValueError) as exc:
            self.failed.append(f"client {c} could not make its actor: {exc!r}")
            return
        total = 0
        r = 0
        while sim.loop.time() < self.work_end or r == 0:
            sent: list[tuple[int, Future]] = []
            for handle in (first, second):
                for _ in range(rng.randint(1, 12)):
                    step = rng.randint(1, 9)
                    total += step
                    arg: Any = step
                    how = via.random()
                    if how < 0.1:  # the step as a task's future
                        arg = client.submit(same, step, pure=False)
                    elif how < 0.2:  # the step as another actor's call's future
                        arg = self._track(echo.echo(step))
                    sent.append((id(handle), self._track(handle.incr(arg))))
                    if rng.random() < 0.3:
                        await rt.sleep(rng.choice((0.0, 0.01, 0.1)))
            if rng.random() < 0.2:
                self._crash_a_worker(rng, f"actor-{name}")
            if not await self._settle([f for _, f in sent]):
                return  # stuck: the invariants report it
            read = self._track(first.incr(0))  # after every call resolved: it sees them all
            if not await self._settle([read]):
                return
            self._judge(c, r, sent, read, total)
            r += 1
            await rt.sleep(rng.uniform(0.2, 1.5))
        await client.close()
        self.clients.remove(client)
        self.finished[c] = True

    def _track(self, f: Future) -> Future:
        self.calls += 1
        self.resolved[f.key] = 0

        def done(fut: Future) -> None:
            self.resolved[fut.key] += 1
            if fut.status != "finished":
                self.failed.append(f"{fut.key}: {fut.status}: {fut.exception()!r}")

        f.add_done_callback(done)
        return f

    async def _settle(self, futs: list[Future]) -> bool:
        waiters = []
        for f in futs:
            waiter = asyncio.get_running_loop().create_future()
            f.add_done_callback(lambda _f, w=waiter: w.done() or w.set_result(None))
            waiters.append(waiter)
        _done, late = await asyncio.wait(waiters, timeout=self.round_timeout)
        for w in late:
            w.cancel()
        self.unresolved += [f.key for f in futs if not f.done()]
        return not late

    def _crash_a_worker(self, rng: random.Random, actor: str) -> None:
        for i, svc in enumerate(self.services_of):
            workers = self.workers[i]
            if svc is not None and svc.core is not None and workers is not None \
                    and actor in svc.core.host.hosted:
                workers.crash(actor)
                self.worker_crashes += 1

    def _judge(self, c: int, r: int, sent: list[tuple[int, Future]], read: Future,
               total: int) -> None:
        if any(f.status != "finished" for _, f in sent) or read.status != "finished":
            return  # a failed call: counted in actors_no_call_lost
        got = read.result()
        if got != total:
            self.wrong.append(f"client {c} round {r}: read {got}, sent {total} in all")
        by_handle: dict[int, list[int]] = {}
        for h, f in sent:
            by_handle.setdefault(h, []).append(f.result())
        for values in by_handle.values():
            if values != sorted(values) or len(set(values)) != len(values):
                self.wrong.append(f"client {c} round {r}: a handle's answers {values[:6]} "
                                  "do not rise in call order")
        values = [f.result() for _, f in sent]
        if len(set(values)) != len(values):
            self.wrong.append(f"client {c} round {r}: two calls saw the same count")

    # --- verdicts -------------------------------------------------------------------
    def invariants(self, end: float) -> list[Invariant]:
        never = sorted(k for k, n in self.resolved.items() if n == 0)
        twice = sorted(k for k, n in self.resolved.items() if n > 1)
        n = self.calls
        # faults last to the end in safety mode: liveness is not promised
        stuck = "inconclusive" if self.sim.scenario.mode == "safety" else "fail"
        return [
            Invariant("actors_resolve", stuck if never else "pass",
                      f"{n - len(never)} of {n} calls resolved"
                      + (f"; never: {', '.join(never[:3])}" if never else "")),
            Invariant("actors_resolved_once", "fail" if twice else "pass",
                      f"{len(twice)} resolved more than once"),
            Invariant("actors_no_call_lost", "fail" if self.failed else "pass",
                      f"{len(self.failed)} failed" + (f"; first: {self.failed[0]}"
                                                      if self.failed else "")),
            Invariant("actors_exactly_once", "fail" if self.wrong else "pass",
                      f"{len(self.wrong)} wrong; {self.worker_crashes} worker crashes"
                      + (f"; first: {self.wrong[0]}" if self.wrong else "")),
        ]
