"""Run a scenario: build the simulated cluster of real :class:`mesh.node.Node`
objects, drive virtual time, inject the faults, and collect the result.

Every node is the unmodified ``mesh.node.Node`` (with ``mesh.gossip`` inside),
given a :class:`~sim.runtime.SimRuntime`. Node ``i`` is named ``n00042``-style
and lives at ``10.a.b.c:7946``. Nodes start spread over the scenario's
``join_spread``; each joins through up to three nodes that started before it.

Determinism: all randomness comes from streams named after the seed
(``{seed}:network``, ``{seed}:faults``, ``{seed}:setup``, one per node life),
time is virtual, and nothing here iterates a set or an unsorted dict, so one
seed gives one trace digest.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mesh.gossip._messages import parse_state
from mesh.node import Node
from sim._loop import SimDeadlock, SimLivelock, SimLoop
from sim.faults import FaultRecord, Injector, plan
from sim.invariants import Invariant, Observer
from sim.network import Host, Network
from sim.runtime import SimRuntime, node_rng
from sim.scenario import Scenario
from sim.trace import Trace
from sim.workloads import make as make_workload

log = logging.getLogger("sim")

SECRET = b"sim-cluster-secret"
"""Every simulated node shares this secret, so every frame is authenticated
with a real key, as in a production cluster."""

PORT = 7946


def node_name(i: int) -> str:
    return f"n{i:05d}"


def node_addr(i: int) -> tuple[str, int]:
    return (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", PORT)


@dataclass
class Result:
    """Everything a run measured; :mod:`sim.report` turns it into output."""

    scenario: Scenario
    seed: int
    nodes: int
    sim_seconds: float
    wall_seconds: float
    events: int
    callbacks: int
    messages_sent: int
    messages_dropped: int
    bytes_sent: int
    detect: dict[str, Any]
    false_dead: list[dict[str, Any]]
    excused_dead: int
    converge: list[dict[str, Any]]
    join_converge_s: float | None
    invariants: list[Invariant]
    faults: list[FaultRecord]
    trace_digest: str
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(i.status == "fail" for i in self.invariants)


class _NodeErrors(logging.Handler):
    """Collects ERROR records that simulated nodes log (each is a bug to
    report); the simulated nodes' warnings and info are not printed."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(f"{record.name}: {record.getMessage()}")


class Simulation:
    """One run of one scenario with one seed. Use :meth:`run` once."""

    def __init__(self, scenario: Scenario, seed: int,
                 progress: Callable[[float, float], None] | None = None,
                 keep_trace: int = 0) -> None:
        scenario.validate()
        self.scenario = scenario
        self.seed = seed
        self.progress = progress
        self.n = scenario.nodes
        self.config = scenario.mesh_config()
        self.loop = SimLoop()
        self.loop.set_exception_handler(self._loop_error)
        self.trace = Trace(keep=keep_trace)
        self.net = Network(self.loop, seed, scenario.network, self.trace)
        names = [node_name(i) for i in range(self.n)]
        self.index = {name: i for i, name in enumerate(names)}
        self.hosts: list[Host] = [self.net.add_host(node_addr(i), names[i])
                                  for i in range(self.n)]
        self.nodes: list[Node | None] = [None] * self.n
        self.lives = [0] * self.n
        self.observer = Observer(names, self.config, self.trace)
        self.observer.loss_changed(self.net.loss, 0.0)
        self.setup_rng = random.Random(f"{seed}:setup")
        self.injector = Injector(self, random.Random(f"{seed}:faults"))
        self.errors: list[str] = []
        self._tasks: dict[asyncio.Task[Any], None] = {}
        self._started: list[int] = []
        self._was_started = bytearray(self.n)
        self._last_start = 0.0
        self._wedged = False
        self.on_start: list[Callable[[int, Node], None]] = []
        """Hooks called as ``hook(i, node)`` when node ``i`` starts (or restarts)."""
        self.on_crash: list[Callable[[int], None]] = []
        """Hooks called as ``hook(i)`` when node ``i`` crashes."""
        self.workload = make_workload(scenario.workload, self)

    # --- node lifecycle ----------------------------------------------------------
    def is_up(self, i: int) -> bool:
        return self.nodes[i] is not None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro, name=name)
        self._tasks[task] = None
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.errors.append(f"{task.get_name()}: {type(exc).__name__}: {exc}")

    def _seeds_for(self, i: int) -> list[tuple[str, int]]:
        started = self._started
        pick: list[int] = []
        for _ in range(12):  # a few draws among the nodes started so far
            if len(pick) == 3 or not started:
                break
            j = started[self.setup_rng.randrange(len(started))]
            if j != i and j not in pick and self.nodes[j] is not None:
                pick.append(j)
        return [node_addr(j) for j in sorted(pick)]

    def start_node(self, i: int) -> None:
        """Start a fresh node process on host ``i`` (first start or restart)."""
        host = self.hosts[i]
        host.down = False
        name = host.name
        life = self.lives[i]
        self.lives[i] += 1
        rt = SimRuntime(self.net, host, node_rng(self.seed, name, life))
        warm = self.scenario.warm and life == 0
        seeds = [] if warm else self._seeds_for(i)
        services = self.workload.services(i, rt, life)
        # a workload that hands its executors the node's spill directory names it
        spill = getattr(self.workload, "spill_of", {}).get((i, life))
        node = Node(rt, self.config, name, host.addr, seeds=seeds, secret=SECRET,
                    meta={"zone": host.zone}, services=services, spill=spill)
        if warm:
            # Joined long ago: the whole table arrives through the real
            # push-pull merge, as the answer to a join would bring it.
            # Its rows are checked once for the whole process (parse_state,
            # as merge_remote would for each node), then merged by each node.
            node.membership.merges.add_checked(self._warm_rows(), self.loop.time(),
                                               bootstrap=True)
            node.membership.merges.finish(self.loop.time())  # all of it, before it starts
        gen = self.observer.node_up(i, self.loop.time())
        node.add_listener(self.observer.listener(i, gen, self.loop.time))
        self.nodes[i] = node
        if not self._was_started[i]:
            self._was_started[i] = 1
            self._started.append(i)
        self._last_start = self.loop.time()
        self.trace.note(self.loop.time(), "start", name, life)
        self._spawn(node.start(), f"start:{name}:{life}")
        for hook in self.on_start:
            hook(i, node)

    _table: list[list[Any]] | None = None

    def _warm_table(self) -> list[list[Any]]:
        """Every node's push-pull row (alive, incarnation 0), as msgpack
        decodes a table; built once and shared (merge_remote only reads it)."""
        if self._table is None:
            self._table = [[h.name, h.addr[0], h.addr[1], 0, 0, {"zone": h.zone}]
                           for h in self.hosts]
        return self._table

    _rows: list[Any] | None = None

    def _warm_rows(self) -> list[Any]:
        """:meth:`_warm_table`, checked (``parse_state`` against an empty table)."""
        if self._rows is None:
            self._rows = parse_state(self._warm_table(), {}, self.config)
        return self._rows

    def crash(self, i: int) -> None:
        """Kill node ``i``'s process: it stops at once and its state is gone."""
        node = self.nodes[i]
        if node is None:
            return
        host = self.hosts[i]
        host.down = True
        host.epoch += 1
        host.paused = False
        host.held.clear()
        host.slow = 1.0
        self.nodes[i] = None
        self.observer.node_down(i, self.loop.time(), node.membership.local.incarnation)
        self.trace.note(self.loop.time(), "crash", host.name)
        self._spawn(node.stop(), f"stop:{host.name}")
        for hook in self.on_crash:
            hook(i)

    def restart(self, i: int) -> None:
        """Start node ``i`` again once its old process has finished stopping."""
        if self.nodes[i] is not None:
            return
        host = self.hosts[i]
        if host.endpoint is not None or host.server is not None:
            # the dying process has not let go of its port yet: retry shortly
            self.loop.call_at(self.loop.time() + 0.1, self.restart, i)
            return
        self.start_node(i)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        msg = context.get("message", "")
        text = f"{msg}: {type(exc).__name__}: {exc}" if exc is not None else str(msg)
        self.errors.append(text)
        log.error("unhandled error in the simulated cluster: %s", text, exc_info=exc)

    # --- the run -------------------------------------------------------------------
    def run(self) -> Result:
        sc = self.scenario
        loop = self.loop
        wall0 = time.perf_counter()
        spread = sc.spread()
        for i in range(self.n):
            loop.call_at(spread * i / self.n, self.start_node, i)
        loop.call_at(spread * (self.n - 1) / self.n + 1e-9, self._all_started)
        _fault_start, fault_end = sc.window()
        self.injector.schedule(plan(sc, random.Random(f"{self.seed}:plan")))
        self.workload.begin()
        if sc.mode == "liveness" and sc.loss_in_faults_only:
            # just after fault_end, so that faults ending at fault_end restore first
            loop.call_at(fault_end + 1e-6, self._calm_network)
        mesh_log = logging.getLogger("mesh")
        saved = (mesh_log.level, mesh_log.propagate)
        # A large run keeps millions of long-lived objects (every node's view
        # of every member), and CPython's default thresholds collect the young
        # generations so often that the collector costs 10-30% of the run.
        # Collect less often while simulating; the previous settings come back.
        gc_saved = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)
        handler = _NodeErrors(self.errors)
        mesh_log.addHandler(handler)
        mesh_log.setLevel(logging.ERROR)
        mesh_log.propagate = False
        try:
            step = 1.0
            t = 0.0
            while t < sc.duration:
                t = min(sc.duration, t + step)
                try:
                    loop.run_until(t)
                except (SimLivelock, SimDeadlock) as exc:
                    # node code wedged the world: report it as a failed run
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    self._wedged = True
                    break
                if self.progress is not None:
                    self.progress(t, sc.duration)
            end = loop.time()
            result = self._result(end, fault_end, time.perf_counter() - wall0)
        finally:
            try:
                self._shutdown()
            finally:
                mesh_log.removeHandler(handler)
                mesh_log.setLevel(saved[0])
                mesh_log.propagate = saved[1]
                gc.set_threshold(*gc_saved)
        return result

    def _all_started(self) -> None:
        self.observer.fault_ended("join", self.loop.time())

    def _calm_network(self) -> None:
        net = self.net
        net.loss = net.duplicate = net.reorder = 0.0
        self.observer.loss_changed(0.0, self.loop.time())
        self.trace.note(self.loop.time(), "network", "calm")

    def _shutdown(self) -> None:
        loop = self.loop

        async def stop_all() -> None:
            await self.workload.stop()
            for node in self.nodes:
                if node is not None:
                    await node.stop()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # whatever else is pending (server handlers of dead hosts, etc.)
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            rest.sort(key=lambda t: t.get_name())
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            if not self._wedged:
                loop.run_until_complete(stop_all())
        finally:
            loop.close()

    def _result(self, end: float, fault_end: float, wall: float) -> Result:
        obs = self.observer
        net = self.net
        errors = self.errors + net.errors
        join = next((c["converge_s"] for c in obs.converge if c["after"] == "join"), None)
        return Result(
            scenario=self.scenario,
            seed=self.seed,
            nodes=self.n,
            sim_seconds=end,
            wall_seconds=wall,
            events=self.trace.count,
            callbacks=self.loop.callbacks_run,
            messages_sent=net.sent,
            messages_dropped=net.dropped,
            bytes_sent=net.bytes_sent,
            detect=obs.detect_summary(),
            false_dead=list(obs.false_dead),
            excused_dead=obs.excused_dead,
            converge=[c for c in obs.converge if c["after"] != "join"],
            join_converge_s=join,
            invariants=(obs.results(self.scenario.mode, end, fault_end, errors)
                        + self.workload.invariants(end)),
            faults=list(self.injector.records),
            trace_digest=self.trace.digest(),
            errors=errors,
        )


def simulate(scenario: Scenario, seed: int,
             progress: Callable[[float, float], None] | None = None) -> Result:
    """Run ``scenario`` with ``seed`` and return its :class:`Result`."""
    return Simulation(scenario, seed, progress).run()
