"""The ``tasks`` workload: clients submit tasks, maps and graphs while faults roll.

Every node runs the real :class:`mesh.exec.ExecService` on a
:class:`sim.executor.SimExecutor`. Two simulated clients (real
:class:`mesh.client.AsyncClient` objects on client hosts) work in rounds from
the end of the join until shortly after the fault phase. Each round submits a
``map``, a graph over it, a graph of that graph, a task that fails twice and
then succeeds (``retries=2``), a task that always raises (``retries=1``), a
dependent of the failing task, and a task it cancels; one round adds a task
that always kills its worker. The round waits for every future, then
releases them all.

Invariants (each judged from what the client sees and what the nodes hold,
through public attributes and done callbacks, never by replacing methods):

* ``tasks_resolve``: every future resolves (``cancelled`` counts for one that
  the client cancelled) by the end of its round; one still waited for at the
  end of the run, in a round that has not timed out, is ``inconclusive`` when
  the last fault ended less than :func:`fault_settle` before;
* ``tasks_right_values``: each resolves once, with the right value, or the
  right error (a failed dependency's error for its dependent,
  ``KilledWorker`` for the worker killer), or is cancelled when cancel
  returned True;
* ``tasks_replicated``: when a future resolves, its result is held by
  ``min(R, nodes up)`` nodes that are up (``R`` its ``replicas=``, else the
  mesh's), unless a fault started or ended within ``detection_bound`` seconds
  (then a holder may have just died, or be believed dead; the entry node still
  holds the spec to recompute);
* ``tasks_lineage``: each round also submits a ``replicas=1`` map, a total
  of it and a ``replicas=1`` graph over that total; when one of those
  resolves, an up node that does not hold its result holds its spec, so it
  can be computed again (same excuse);
* ``tasks_nothing_left``: at the end, once every client released every key
  and closed, no node that is up holds a task, a result, a session's key, a
  subscription or a pending request. Work stops :func:`quiet_end` before the
  end; the verdict is ``inconclusive`` while the last fault ended less than
  :func:`fault_settle`, or the last release less than :func:`quiet_end`,
  before it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mesh.client import AsyncClient
from mesh.config import Config
from mesh.exec import ExecService
from mesh.placement import Member as PMember
from mesh.placement import Placement
from sim.executor import SimExecutor, SimWorkerCrash
from sim.invariants import Invariant
from sim.runner import SECRET
from sim.runtime import SimRuntime

if TYPE_CHECKING:
    from mesh.client import Future
    from sim.runner import Simulation

__all__ = ["TasksWorkload"]

CLIENTS = 2
ROUND_SLACK = 5.0
"""Seconds a round usually takes to finish after it starts (its futures
resolve, then it releases them)."""

def quiet_end(cfg: Config) -> float:
    """Simulated seconds left without new work at the end: a release that was
    lost is found by the holder's next recheck (within
    ``subscription_recheck`` and a tick), and a key that was held for nobody
    then goes after ``orphan_grace`` and a tick."""
    return cfg.subscription_recheck + cfg.orphan_grace + 2 * cfg.exec_tick


def fault_settle(cfg: Config, n: int) -> float:
    """Simulated seconds after the last fault until ``tasks_nothing_left``
    is conclusive: a subscriber that crashed or was cut off is dropped by its
    holders within ``detection_bound``, which orphans what it held; an orphan
    goes after ``orphan_grace`` and a tick."""
    return cfg.detection_bound(n) + cfg.orphan_grace + cfg.exec_tick

_ATTEMPTS: dict[str, int] = {}
"""How often each flaky task has run in this process's current simulation
(the outside world a flaky task talks to; reset by every TasksWorkload)."""


# --- the task functions (cloudpickled by reference: this module is importable)
def square_plus(x: int) -> int:
    return x * x + 1


def total(*xs: int) -> int:
    return sum(xs)


def boom(tag: str) -> int:
    raise ValueError(f"boom {tag}")


def flaky(tag: str, x: int, fails: int) -> int:
    n = _ATTEMPTS[tag] = _ATTEMPTS.get(tag, 0) + 1
    if n <= fails:
        raise RuntimeError(f"flaky {tag} attempt {n}")
    return x * x + 1


def kill_worker() -> None:
    raise SimWorkerCrash


@dataclass
class _Expect:
    key: str
    what: str  # "value" | "error" | "killed" | "cancel"
    value: Any = None
    resolved: int = 0
    at: float = -1.0
    replicas: int = 0  # 0: the mesh's


class TasksWorkload:
    name = "tasks"

    crash_rate = 0.01
    """Chance that a simulated worker crashes running a job."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        _ATTEMPTS.clear()
        self.services_of: list[ExecService | None] = [None] * sim.n
        self.clients: list[AsyncClient] = []
        self.expect: dict[str, _Expect] = {}
        self.wrong: list[str] = []
        self.unreplicated: list[str] = []
        self.unrecoverable: list[str] = []
        self.excused = 0
        self.random_crashes: dict[str, int] = {}
        """Worker crashes the executors drew at random (1%), per key: a task
        they hit ``max_task_crashes`` times is rightly ``KilledWorker``
        (campaign seed 377: a flaky task's five runs drew three)."""
        self.unresolved: list[str] = []
        self.rounds_done = [0] * CLIENTS
        self.last_release = 0.0
        self.finished = [False] * CLIENTS
        cfg = sim.config
        self.replicas = cfg.replicas
        self.window = cfg.detection_bound(sim.n)
        spread = sim.scenario.spread()
        _, fault_end = sim.scenario.window()
        self.t0 = spread + 3.0
        quiet = quiet_end(cfg)
        # the last round ends a few seconds after work_end (ROUND_SLACK)
        self.work_end = max(self.t0 + 5.0, min(fault_end + 5.0,
                                               sim.scenario.duration - quiet - ROUND_SLACK))
        self.round_timeout = max(20.0, sim.scenario.duration - quiet / 2 - self.t0)
        self.client_hosts = [sim.net.add_host((f"10.255.0.{c + 1}", 7000), f"client{c}")
                             for c in range(CLIENTS)]
        self._every_node: list[Any] = []
        sim.on_crash.append(self._crashed)
        sim.on_start.append(lambda i, node: self._every_node.append(node))

    # --- the harness's calls --------------------------------------------------------
    def services(self, i: int, runtime: SimRuntime, life: int) -> list[Any]:
        name = self.sim.hosts[i].name
        ex = SimExecutor(runtime, random.Random(f"{self.sim.seed}:{name}:{life}:exec"),
                         crash_rate=self.crash_rate, crash_log=self.random_crashes)
        svc = ExecService(ex, window=64)
        self.services_of[i] = svc
        return [svc]

    def _crashed(self, i: int) -> None:
        self.services_of[i] = None

    def begin(self) -> None:
        for c in range(CLIENTS):
            self.sim._spawn(self._client(c), f"client{c}")

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients = []

    # --- the clients ----------------------------------------------------------------
    async def _client(self, c: int) -> None:
        from sim.workloads import start_client

        sim = self.sim
        client, rt, rng = await start_client(self, c, "tasks", f"sim{sim.seed}c{c}", SECRET,
                                             self.round_timeout)
        r = 0
        while self.sim.loop.time() < self.work_end or r == 0:
            futs = await self._round(client, rt, rng, c, r)
            pending = [self._settled(f) for f in futs]
            _done, late = await asyncio.wait(pending, timeout=self.round_timeout)
            for w in late:
                w.cancel()
            for f in futs:
                if not f.done():
                    self.unresolved.append(f.key)
                f.release()
            self.last_release = self.sim.loop.time()
            r += 1
            self.rounds_done[c] = r
            if late:
                return  # the run is stuck: the invariants report it
            await rt.sleep(rng.uniform(0.2, 2.0))
        await client.close()
        self.clients.remove(client)
        self.finished[c] = True

    def _settled(self, f: Future) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()

        def done(_: Future) -> None:
            if not waiter.done():
                waiter.set_result(None)

        f.add_done_callback(done)
        return waiter

    async def _round(self, client: AsyncClient, rt: SimRuntime, rng: random.Random,
                     c: int, r: int) -> list[Future]:
        tag = f"c{c}r{r}"
        out: list[Future] = []

        def track(f: Future, what: str, value: Any = None, replicas: int = 0) -> Future:
            e = self.expect[f.key] = _Expect(f.key, what, value, replicas=replicas)
            f.add_done_callback(lambda fut: self._resolved(fut, e))
            out.append(f)
            return f

        xs = [rng.randrange(1000) for _ in range(rng.randint(3, 8))]
        mapped = client.map(square_plus, xs, pure=False, retries=1)
        for f, x in zip(mapped, xs, strict=True):
            track(f, "value", square_plus(x))
        picks = sorted(rng.sample(range(len(xs)), min(3, len(xs))))
        graph = track(client.submit(total, *(mapped[i] for i in picks), pure=False),
                      "value", sum(square_plus(xs[i]) for i in picks))
        track(client.submit(total, graph, 1, pure=False), "value",
              sum(square_plus(xs[i]) for i in picks) + 1)
        lrng = random.Random(f"{self.sim.seed}:lineage:{tag}")  # leaves rng's draws as they are
        ys = [lrng.randrange(1000) for _ in range(lrng.randint(2, 5))]
        ones = client.map(square_plus, ys, pure=False, replicas=1)  # lineage, not copies
        for f, y in zip(ones, ys, strict=True):
            track(f, "value", square_plus(y), replicas=1)
        low = sum(square_plus(y) for y in ys)
        mid = track(client.submit(total, *ones, pure=False, replicas=1), "value", low, 1)
        track(client.submit(total, mid, graph, pure=False), "value",
              low + sum(square_plus(xs[i]) for i in picks))
        x = rng.randrange(1000)
        track(client.submit(flaky, f"{tag}f", x, 2, pure=False, retries=2), "value",
              square_plus(x))
        bad = track(client.submit(boom, tag, pure=False, retries=1), "error", f"boom {tag}")
        track(client.submit(total, bad, mapped[0], pure=False), "error", f"boom {tag}")
        if r == 1:
            track(client.submit(kill_worker, pure=False), "killed")
        if r == 0:  # a hot spot: every key owned by one node, so idle nodes steal
            for j, key in enumerate(self._keys_owned_by(self.sim.hosts[0].name, f"{tag}h", 24)):
                track(client.submit(square_plus, j, key=key, pure=False), "value", square_plus(j))
        y = rng.randrange(1000)
        doomed = track(client.submit(square_plus, y, pure=False), "cancel", square_plus(y))
        await rt.sleep(rng.choice((0.0, 0.0, 0.01, 0.1, 0.5)))
        doomed.cancel()
        return out

    def _keys_owned_by(self, owner: str, prefix: str, count: int) -> list[str]:
        cfg = self.sim.config
        placement = Placement([PMember(h.name, 2) for h in self.sim.hosts],
                              vnodes=cfg.placement_vnodes, probes=cfg.placement_probes)
        keys = (f"{prefix}{j}" for j in itertools.count())
        return list(itertools.islice((k for k in keys if placement.owner(k) == owner), count))

    def stolen(self) -> int:
        """Tasks idle nodes took from loaded ones, over every node life so far."""
        return sum(node.metrics.get("exec_tasks_taken") for node in self._every_node)

    # --- checks ---------------------------------------------------------------------
    def _resolved(self, f: Future, e: _Expect) -> None:
        sim = self.sim
        now = sim.loop.time()
        e.resolved += 1
        e.at = now
        sim.trace.note(now, "resolve", f.key, f.status)
        if e.resolved > 1:
            self.wrong.append(f"{f.key} resolved {e.resolved} times")
            return
        problem = _judge(f, e)
        if problem and f.status == "error" and type(f.exception()).__name__ == "KilledWorker" \
                and self.random_crashes.get(f.key, 0) >= sim.config.max_task_crashes:
            problem = ""  # the simulated workers' random crashes killed it, rightly
        if problem:
            self.wrong.append(f"{f.key}: {problem}")
            return
        if f.status in ("finished", "error"):
            self._check_replicas(f.key, now, e.replicas or self.replicas)
            if e.replicas and e.replicas < self.replicas:
                self._check_lineage(f.key, now)

    def _up(self) -> list[Any]:
        return [svc.core for svc in self.services_of if svc is not None and svc.core is not None]

    def _check_lineage(self, key: str, now: float) -> None:
        """A result kept on fewer nodes than the mesh's replicas can be
        computed again: an up node that does not hold it holds its spec."""
        if any(key in c.tasks and key not in c.results for c in self._up()):
            return
        if not self._disturbed(now):
            self.unrecoverable.append(f"{key} resolved at {now:.2f}s with no spare spec")

    def _check_replicas(self, key: str, now: float, replicas: int) -> None:
        up = self._up()
        holders = sum(1 for core in up if key in core.results)
        need = min(replicas, len(up))
        if holders >= need:
            return
        if self._disturbed(now):
            self.excused += 1
            return
        self.unreplicated.append(f"{key} resolved at {now:.2f}s held by {holders} of the "
                                 f"{need} nodes it needs")

    def _disturbed(self, now: float) -> bool:
        w = self.window
        for rec in self.sim.injector.records:
            if rec.skipped:
                continue
            end = rec.end if rec.end is not None else now
            if rec.start <= now and end >= now - w:
                return True
        return False

    def _leftovers(self) -> list[str]:
        out = []
        for svc in self.services_of:
            core = svc.core if svc is not None else None
            if core is None:
                continue
            t = core.table
            held = {
                "tasks": t.tasks, "results": t.results, "held": t.held, "watch": t.watch,
                "pending": t.pending, "waiters": t.waiters, "interest": t.interest,
                "orphan_wants": t.orphan_wants, "specs": t.specs, "asked": t.asked,
            }
            for what, table in held.items():
                if table:
                    out.append(f"{core.name} {what}: {sorted(table)[:3]}"
                               f"{' ...' if len(table) > 3 else ''}")
        return out

    def invariants(self, end: float) -> list[Invariant]:
        n = len(self.expect)
        out = []
        never = sorted(k for k, e in self.expect.items() if e.resolved == 0)
        settle = fault_settle(self.sim.config, self.sim.n)
        settled = self._last_fault() + settle <= end
        # A future still waited for at the end, whose round has not timed out,
        # while faults rolled until shortly before: the run ended too soon to tell.
        gave_up = [k for k in never if k in self.unresolved]
        status = "pass" if not never else "fail" if settled or gave_up else "inconclusive"
        out.append(Invariant(
            "tasks_resolve", status,
            f"{n - len(never)} of {n} futures resolved"
            + (f"; never: {', '.join((gave_up or never)[:3])}" if never else "")
            + (f" (still waited for; a fault ended {end - self._last_fault():.1f}s before "
               f"the end, less than {settle:.1f}s)" if status == "inconclusive" else "")))
        out.append(Invariant(
            "tasks_right_values", "fail" if self.wrong else "pass",
            f"{len(self.wrong)} wrong" + (f"; first: {self.wrong[0]}" if self.wrong else "")))
        out.append(Invariant(
            "tasks_replicated", "fail" if self.unreplicated else "pass",
            f"{len(self.unreplicated)} resolved before {self.replicas} up nodes held them; "
            f"{self.excused} excused by a recent fault"
            + (f"; first: {self.unreplicated[0]}" if self.unreplicated else "")))
        out.append(self._lineage_invariant())
        if not all(self.finished):
            out.append(Invariant("tasks_nothing_left", "inconclusive",
                                 "a client did not finish its rounds"))
        else:
            left = self._leftovers()
            quiet = self.last_release + quiet_end(self.sim.config) <= end
            status = "pass" if not left else "fail" if settled and quiet else "inconclusive"
            out.append(Invariant(
                "tasks_nothing_left", status,
                f"{len(left)} table(s) not empty after every key was released"
                + (f"; {left[0]}" if left else "")
                + (f" (the last fault ended {end - self._last_fault():.1f}s and the last "
                   f"release was {end - self.last_release:.1f}s before the end; orphans may "
                   f"take {settle:.1f}s and {quiet_end(self.sim.config):.1f}s)"
                   if status == "inconclusive" else "")))
        return out

    def _last_fault(self) -> float:
        """When the last fault that happened started or ended."""
        return max((rec.end if rec.end is not None else rec.start
                    for rec in self.sim.injector.records if not rec.skipped), default=0.0)


    def _lineage_invariant(self) -> Invariant:
        lin = sum(1 for e in self.expect.values() if e.replicas and e.replicas < self.replicas)
        bad = self.unrecoverable
        return Invariant("tasks_lineage", "fail" if bad else "pass",
                         f"{lin - len(bad)} of {lin} lineage futures resolved recomputable"
                         + (f"; first: {bad[0]}" if bad else ""))


def _judge(f: Future, e: _Expect) -> str:
    """What is wrong with how ``f`` resolved, or ''."""
    status = f.status
    if e.what == "cancel":  # cancelled, or it finished first
        if status == "cancelled" or (status == "finished" and f.result() == e.value):
            return ""
        return f"not cancelled and resolved {status}, expected {e.value!r}"
    if status == "finished":
        got = f.result()
        return "" if e.what == "value" and got == e.value else (
            f"resolved to {got!r}, expected {e.what} {e.value!r}")
    exc = f.exception()
    if e.what == "error":
        ok = isinstance(exc, ValueError) and str(exc) == e.value
    elif e.what == "killed":
        ok = type(exc).__name__ == "KilledWorker"
    else:
        ok = False
    return "" if ok else f"{status}: {type(exc).__name__}: {exc}, expected {e.what} {e.value!r}"
