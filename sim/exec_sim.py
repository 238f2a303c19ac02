"""The exec layer under the simulator: a simulated executor and a harness.

:class:`SimExecutor` implements :class:`mesh.exec.Executor` on virtual time:
each job takes a random simulated duration on one of ``workers`` simulated
workers, then its function runs in-process (the simulator trusts its own
tasks). A job may "crash its worker" at random (``crash_rate``) or always
(functions that raise :class:`SimWorkerCrash`), which reports ``CRASHED``
exactly like a dead worker process would.

:func:`run_exec_sim` starts ``nodes`` real :class:`mesh.node.Node` objects
with the real :class:`mesh.exec.ExecService` on :class:`sim.SimRuntime`,
attaches a real :class:`mesh.client.AsyncClient` from a client host,
submits independent tasks and task graphs while nodes crash (and restart),
and checks the invariants:

* every submitted future resolves (nothing is lost);
* every value is the right one, and no future resolves twice or with two
  different values (every ``Done`` message for a key carries the same result);
* a task that always crashes its worker ends in ``KilledWorker``.

Everything is drawn from the seed, so a seed gives one run.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from mesh.config import Config
from mesh.exec import ExecService, KilledWorker
from mesh.exec._executor import Job, OutcomeHandler
from mesh.node import Node
from mesh.placement import Member as PMember
from mesh.placement import Placement
from mesh.protocol import payload as P
from mesh.protocol.messages import Done
from sim._loop import SimLoop
from sim.network import Host, NetConfig, Network
from sim.runtime import SimRuntime, node_rng

__all__ = ["ExecSimResult", "SimExecutor", "SimWorkerCrash", "run_exec_sim"]

SIM_CONFIG = Config().with_(
    probe_interval=0.2, probe_timeout=0.1, gossip_interval=0.05, suspicion_mult=2,
    push_pull_interval=2.0, join_retry_initial=0.1, join_retry_max=0.3,
)
"""Fast failure detection, as in the process tests."""


class SimWorkerCrash(Exception):
    """Raised by a task function to make :class:`SimExecutor` report that the
    task killed its worker process."""


def crash_worker() -> None:
    raise SimWorkerCrash


def square_plus(x: int) -> int:
    return x * x + 1


def total(*xs: int) -> int:
    return sum(xs)


class SimExecutor:
    """An :class:`~mesh.exec.Executor` on virtual time (see the module doc)."""

    def __init__(self, runtime: SimRuntime, rng: random.Random, *, workers: int = 2,
                 depth: int = 2, mean_duration: float = 0.05, crash_rate: float = 0.0) -> None:
        self.workers = workers
        self._runtime = runtime
        self._rng = rng
        self._depth = depth
        self._mean = mean_duration
        self._crash_rate = crash_rate
        self._queue: list[Job] = []
        self._busy = 0
        self._timers: dict[int, Any] = {}
        self._next = 0
        self._on: OutcomeHandler | None = None
        self._stopped = False
        self._fns: dict[bytes, Callable[..., Any]] = {}
        self.crashes = 0

    async def start(self, on_outcomes: OutcomeHandler) -> None:
        self._on = on_outcomes

    def capacity(self, fn: bytes | None = None) -> int:
        return max(0, self.workers * self._depth - self._busy - len(self._queue))

    def run(self, jobs: list[Job]) -> None:
        self._queue.extend(jobs)
        self._pump()

    def run_solo(self, job: Job) -> None:
        self._queue.append(job)
        self._pump()

    async def stop(self) -> None:
        self._stopped = True
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

    def _pump(self) -> None:
        while self._queue and self._busy < self.workers and not self._stopped:
            job = self._queue.pop(0)
            self._busy += 1
            duration = self._rng.expovariate(1.0 / self._mean)
            self._next += 1
            n = self._next
            self._timers[n] = self._runtime.call_later(
                duration, lambda job=job, n=n: self._finish(job, n))

    def _finish(self, job: Job, n: int) -> None:
        self._busy -= 1
        self._timers.pop(n, None)
        if self._stopped or self._on is None:
            return
        tid, blob, akind, args, deps = job
        if self._rng.random() < self._crash_rate:
            outcome = (tid, P.CRASHED, b"")
        else:
            outcome = self._execute(tid, blob, akind, args, deps)
        if outcome[1] == P.CRASHED:
            self.crashes += 1
        self._on([outcome])
        self._pump()

    def _execute(self, tid: str, blob: bytes, akind: int, args: bytes,
                 deps: dict | None) -> tuple[str, int, bytes]:
        fn = self._fns.get(blob)
        if fn is None:
            fn = self._fns[blob] = cloudpickle.loads(blob)
        try:
            values = {k: P.loads_value(kind, payload) for k, (kind, payload) in
                      (deps or {}).items()}
            a, kw = P.loads_args(akind, args, values)
            kind, payload = P.dumps_value(fn(*a, **kw))
        except SimWorkerCrash:
            return tid, P.CRASHED, b""
        except Exception as exc:  # the task's error is its result
            kind, payload = P.dumps_error(exc)
        return tid, kind, payload


@dataclass
class ExecSimResult:
    seed: int
    errors: list[str] = field(default_factory=list)
    submitted: int = 0
    resolved: int = 0
    node_crashes: int = 0
    worker_crashes: int = 0
    killed: int = 0
    """Tasks that random worker crashes hit ``max_task_crashes`` times."""
    stolen: int = 0
    """Tasks idle nodes took from loaded ones."""
    virtual_seconds: float = 0.0
    trace_digest: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def _addr(i: int) -> tuple[str, int]:
    return (f"10.0.0.{i + 1}", 7946)


async def _scenario(seed: int, nodes: int, tasks: int, crash_nodes: bool,
                    crash_rate: float, skew: bool, result: ExecSimResult) -> None:
    from mesh.client import AsyncClient

    loop = asyncio.get_running_loop()
    assert isinstance(loop, SimLoop)
    rng = random.Random(f"{seed}:exec-scenario")
    net = Network(loop, seed, NetConfig(zones=2, latency_max=0.005))
    hosts: list[Host] = [net.add_host(_addr(i), f"n{i}") for i in range(nodes)]
    running: list[Node | None] = [None] * nodes
    lives = [0] * nodes
    executors: list[SimExecutor] = []
    services: list[ExecService | None] = [None] * nodes
    every_node: list[Node] = []
    stopping: list[asyncio.Task[Any]] = []

    async def start(i: int) -> None:
        host = hosts[i]
        host.down = False
        rt = SimRuntime(net, host, node_rng(seed, host.name, lives[i]))
        ex = SimExecutor(rt, random.Random(f"{seed}:{host.name}:{lives[i]}:exec"),
                         crash_rate=crash_rate)
        executors.append(ex)
        lives[i] += 1
        seeds = [_addr(j) for j in range(nodes) if j != i and running[j] is not None][:2]
        service = ExecService(ex, window=64)
        services[i] = service
        node = Node(rt, SIM_CONFIG, host.name, host.addr, seeds=seeds or [_addr((i + 1) % nodes)],
                    services=[service])
        running[i] = node
        every_node.append(node)
        await node.start()

    def crash(i: int) -> None:
        node = running[i]
        if node is None:
            return
        running[i] = None
        host = hosts[i]
        host.down = True
        host.epoch += 1
        result.node_crashes += 1
        stopping.append(loop.create_task(node.stop()))

    for i in range(nodes):
        await start(i)
    client_host = net.add_host(("10.0.1.1", 7000), "client")
    client_rt = SimRuntime(net, client_host, node_rng(seed, "client"))
    await client_rt.sleep(3.0)  # let gossip converge

    seen: dict[str, set[bytes]] = {}
    addrs = [f"{h}:{p}" for h, p in (_addr(i) for i in range(nodes))]
    client = AsyncClient(addrs, runtime=client_rt, client_id=f"sim{seed}",
                         connect_timeout=1.0, reconnect_timeout=60.0)
    await client.start()
    core = client._core
    original = core._on_messages

    def spy(msgs: list) -> None:
        for m in msgs:
            if isinstance(m, Done):
                seen.setdefault(m.key, set()).add(bytes([m.kind]) + bytes(m.payload))
        original(msgs)

    core._on_messages = spy  # type: ignore[method-assign]

    async def chaos() -> None:
        # Crash up to nodes - 2 nodes (never the last two standing), restart some.
        for _ in range(2):
            await client_rt.sleep(rng.uniform(0.05, 0.6))
            up = [i for i in range(nodes) if running[i] is not None]
            if len(up) > 2:
                victim = rng.choice(up)
                crash(victim)
                if rng.random() < 0.5:
                    await client_rt.sleep(rng.uniform(0.5, 2.0))
                    await asyncio.gather(*stopping)
                    await start(victim)

    chaos_task = loop.create_task(chaos()) if crash_nodes else None
    futures: list[tuple[Any, Any]] = []
    for batch in range(4):
        xs = list(range(batch * tasks // 4, (batch + 1) * tasks // 4))
        if skew:  # every task owned by one node: the others must steal to help
            futs = [client.submit(square_plus, x, key=_key_owned_by("n1", x, nodes),
                                  pure=False, retries=1) for x in xs]
        else:
            futs = client.map(square_plus, xs, pure=False, retries=1)
        futures += [(f, square_plus(x)) for f, x in zip(futs, xs, strict=True)]
        picks = rng.sample(futs, min(5, len(futs)))
        graph = client.submit(total, *picks, pure=False)
        futures.append((graph, sum(f_expected for f, f_expected in futures if f in picks)))
        await client_rt.sleep(rng.uniform(0.0, 0.3))
    poison = client.submit(crash_worker, pure=False)
    result.submitted = len(futures) + 1

    try:
        await asyncio.wait_for(client.gather([f for f, _ in futures], errors="skip"), 120.0)
    except TimeoutError:
        pending = [f.key for f, _ in futures if not f.done()]
        result.errors.append(f"{len(pending)} futures never resolved, e.g. {pending[:3]}")
        result.errors += [_describe(pending[0], services, running)]
    for f, expected in futures:
        if f.done():
            result.resolved += 1
            try:
                got = f._state.value()
            except KilledWorker:
                # Random worker crashes hit this task max_task_crashes times:
                # the documented outcome, not a violation.
                result.killed += 1
                continue
            except Exception as exc:  # recorded as an invariant violation below
                result.errors.append(f"{f.key} failed: {type(exc).__name__}: {exc}")
                continue
            if got != expected:
                result.errors.append(f"{f.key} resolved to {got!r}, expected {expected!r}")
    try:
        await asyncio.wait_for(client.gather(poison), 60.0)
        result.errors.append("a task that always crashes its worker returned a value")
    except KilledWorker:
        result.resolved += 1
    except TimeoutError:
        result.errors.append("the crashing task never resolved")
    for key, payloads in sorted(seen.items()):
        if len(payloads) > 1:
            result.errors.append(f"{key} was delivered with {len(payloads)} different results")
    if chaos_task is not None:
        await chaos_task
    await client.close()
    for node in running:
        if node is not None:
            await node.stop()
    await asyncio.gather(*stopping)
    result.worker_crashes = sum(ex.crashes for ex in executors)
    result.virtual_seconds = loop.time()
    result.errors += [f"network handler error: {e}" for e in net.errors]
    result.trace_digest = net.trace.digest()
    result.stolen = sum(n.metrics.get("exec_tasks_taken") for n in every_node)


def _describe(key: str, services: list[ExecService | None], running: list[Node | None]) -> str:
    """Where ``key`` stands on every node (for a failure report)."""
    parts = []
    for svc, node in zip(services, running, strict=True):
        core = svc.core if svc is not None else None
        if core is None:
            continue
        task = core.tasks.get(key)
        st = core.results.get(key)
        down = "" if node is not None else "(down)"
        t = task and (task.state, sorted(task.subs), sorted(task.missing))
        r = st and (sorted(st.subs), st.targets, st.confirmed)
        parts.append(
            f"{core.name}{down}: view={sorted(core.ring.names)} pref={core.ring.pref(key)} "
            f"task={t} result={r} pending={key in core.pending} watch={core.table.watch.get(key)} "
            f"orphan_wants={core.table.orphan_wants.get(key)}")
    return f"state of {key}: " + " | ".join(parts)


def _key_owned_by(owner: str, x: int, nodes: int) -> str:
    placement = Placement([PMember(f"n{i}", 2) for i in range(nodes)],
                          vnodes=SIM_CONFIG.placement_vnodes, probes=SIM_CONFIG.placement_probes)
    return next(f"sq-{x}-{j}" for j in itertools.count() if placement.owner(f"sq-{x}-{j}") == owner)


def run_exec_sim(seed: int, *, nodes: int = 4, tasks: int = 120, crash_nodes: bool = True,
                 crash_rate: float = 0.02, skew: bool = False) -> ExecSimResult:
    """One simulated run; see the module doc for what it checks. ``skew``
    gives every independent task to one owner, so idle nodes steal."""
    from sim._loop import run

    result = ExecSimResult(seed)
    run(_scenario(seed, nodes, tasks, crash_nodes, crash_rate, skew, result))
    return result
