"""The ``data`` workload: graphs of large values while their holders die.

Every node runs the real :class:`mesh.exec.ExecService` on a
:class:`sim.executor.SimExecutor` with the node's real store and data plane.
The scenario's config (``sim.scenario.WORKLOAD_CONFIG["data"]``) shrinks the
data plane: 4 KiB chunks (``transfer_chunk``) and locality threshold
(``locality_bytes``, also the size from which a client is told ``REMOTE``
and fetches), a value from 4 KiB up (``oob_threshold``), a 1 MiB memory budget
per node (so values spill), so a 20-200 KiB value is 5-50 chunks and cheap to
simulate.

Two simulated clients work in rounds. A round submits:

* 3-5 *makers*, each a self-checking value of 20-200 KiB
  (:func:`sim.invariants.data.sealed`), some with ``replicas=1`` (kept once,
  recomputed from lineage if lost);
* 2 *mixes*, each a new large value made from two makers (so one input at
  least crosses the network, to the node that holds most input bytes);
* a *digest* of each mix and one of every maker, small values, their keys all
  owned by one node so that idle nodes steal them; and a *total* of those.

Every value is streamed to its replicas and to the client in chunks. While a
round runs, a *holder killer* looks for transfers in flight between nodes
and, at most :data:`KILLS` times per run, crashes the sending node
mid-transfer (a ``restart`` fault through :class:`sim.faults.Injector`, so
the run's fault records and excuses see it): the receiver must take the value
up from another replica, or the value must be computed again. The scenario's
own rolling faults (crashes, partitions, pauses, loss) run as well. The round
waits for every future, checks each value, then releases them all.

Invariants: :mod:`sim.invariants.data`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
from typing import TYPE_CHECKING, Any

from mesh.exec import ExecService
from mesh.placement import Member as PMember
from mesh.placement import Placement
from mesh.store import MemorySpillDir
from sim.executor import SimExecutor
from sim.faults import FaultSpec
from sim.invariants import Invariant
from sim.invariants.data import DataChecks, leftovers, sealed, torn, whole
from sim.runner import SECRET
from sim.runtime import SimRuntime
from sim.workloads.tasks import ROUND_SLACK, fault_settle, quiet_end

if TYPE_CHECKING:
    from mesh.client import AsyncClient, Future
    from sim.runner import Simulation

__all__ = ["DataWorkload", "digest_of", "make", "mix"]

CLIENTS = 2
KIB = 1024
KILLS = 2
"""Holders the workload kills mid-transfer per run (besides the rolling faults)."""
KILL_AFTER = 0.05
"""Simulated seconds between two looks for a transfer in flight."""


# --- the task functions (cloudpickled by reference: this module is importable)
def make(tag: str, size: int) -> bytes:
    """A self-checking value of ``size`` bytes, the same for the same tag."""
    return sealed(random.Random(tag).randbytes(size - 32))


def mix(tag: str, a: bytes, b: bytes) -> bytes:
    """A new large value from two: half of each, behind a fresh seal."""
    for v in (a, b):
        if not whole(v):
            raise torn(f"mix {tag}", v)
    body = a[32:32 + (len(a) - 32) // 2] + b[32 + (len(b) - 32) // 2:]
    return sealed(hashlib.sha256(tag.encode()).digest() + body)


def digest_of(tag: str, *values: bytes) -> str:
    """A small result from large inputs: the hash of their seals."""
    for v in values:
        if not whole(v):
            raise torn(f"digest {tag}", v)
    return hashlib.sha256(b"".join(v[:32] for v in values)).hexdigest()[:16]


def total(*digests: str) -> str:
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:16]


def _client_view(client: AsyncClient, key: str) -> str:
    """Where a future the client still waits for stands, for the trace."""
    core = client._core
    fetch = core._values.fetches.get(key)
    got = "no transfer" if fetch is None else (
        f"transfer from {fetch.src or 'nobody'} at chunk {fetch.receiver.next_seq} of "
        f"{fetch.receiver.nchunks}")
    return f"client on {core.node}, {got}"


class DataWorkload:
    name = "data"

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.checks = DataChecks()
        self.services_of: list[ExecService | None] = [None] * sim.n
        self.clients: list[AsyncClient] = []
        self.finished = [False] * CLIENTS
        self.last_release = 0.0
        self.kills: list[str] = []
        self.busy_rounds = 0
        cfg = sim.config
        spread = sim.scenario.spread()
        self.fault_end = sim.scenario.window()[1]
        self.t0 = spread + 3.0
        quiet = quiet_end(cfg)
        self.work_end = max(self.t0 + 5.0, min(self.fault_end + 5.0,
                                               sim.scenario.duration - quiet - ROUND_SLACK))
        self.round_timeout = max(20.0, sim.scenario.duration - quiet / 2 - self.t0)
        self.client_hosts = [sim.net.add_host((f"10.253.0.{c + 1}", 7000), f"vclient{c}")
                             for c in range(CLIENTS)]
        self.every_node: list[Any] = []
        self.spill_of: dict[tuple[int, int], MemorySpillDir] = {}
        """Each node life's spill directory (:class:`sim.runner.Simulation` gives it
        to the node)."""
        sim.on_crash.append(self._crashed)
        sim.on_start.append(lambda i, node: self.every_node.append(node))
        placement = Placement([PMember(h.name, 2) for h in sim.hosts],
                              vnodes=cfg.placement_vnodes, probes=cfg.placement_probes)
        self._owner = placement.owner

    # --- the harness's calls --------------------------------------------------------
    def services(self, i: int, runtime: SimRuntime, life: int) -> list[Any]:
        name = self.sim.hosts[i].name
        # the node's spill directory, shared with its executor as `mesh join`
        # shares --spill-dir with its workers: results arrive as Values in files
        spill = self.spill_of[i, life] = MemorySpillDir(path=f"/sim/{name}/{life}")
        ex = SimExecutor(runtime, random.Random(f"{self.sim.seed}:{name}:{life}:exec"),
                         crash_rate=0.01, spill=spill, oob_threshold=self.sim.config.oob_threshold)
        svc = ExecService(ex, window=64)
        self.services_of[i] = svc
        return [svc]

    def _crashed(self, i: int) -> None:
        self.services_of[i] = None

    def begin(self) -> None:
        for c in range(CLIENTS):
            self.sim._spawn(self._client(c), f"vclient{c}")
        self.sim._spawn(self._killer(), "holder-killer")

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients = []

    # --- the holder killer ----------------------------------------------------------
    async def _killer(self) -> None:
        """Crash a node while it sends a value to another, :data:`KILLS` times."""
        sim = self.sim
        rng = random.Random(f"{sim.seed}:data:killer")
        await asyncio.sleep(self.t0 + rng.uniform(0.5, 3.0))
        while len(self.kills) < KILLS and sim.loop.time() < self.fault_end:
            victim = self._sender_mid_transfer()
            if victim is None or sum(map(sim.is_up, range(sim.n))) < sim.n - 1:
                await asyncio.sleep(KILL_AFTER)
                continue
            at = sim.loop.time()
            sim.injector.start(FaultSpec("restart", at, rng.uniform(3.0, 10.0),
                                         nodes=[victim]))
            self.kills.append(f"{victim} at {at:.2f}s")
            sim.trace.note(at, "data-kill", victim)
            await asyncio.sleep(rng.uniform(2.0, 8.0))

    def _sender_mid_transfer(self) -> str | None:
        """A node another node is receiving a value from, partly received."""
        for svc in self.services_of:
            if svc is None or svc.data is None:
                continue
            for fetch in svc.data.peers.fetches.values():
                r = fetch.receiver
                if fetch.src and 0 < r.next_seq < r.nchunks and fetch.src in self.sim.index \
                        and self.sim.is_up(self.sim.index[fetch.src]) \
                        and self.sim.index[fetch.src] not in self.sim.injector.busy:
                    return fetch.src
        return None

    # --- the clients ----------------------------------------------------------------
    async def _client(self, c: int) -> None:
        from sim.workloads import start_client

        sim = self.sim
        client, rt, rng = await start_client(self, c, "data", f"sim{sim.seed}v{c}", SECRET,
                                             self.round_timeout)
        r = 0
        while sim.loop.time() < self.work_end or r == 0:
            futs = self._round(client, rng, f"s{sim.seed}c{c}r{r}")
            waits = [self._settled(f) for f in futs]
            _done, late = await asyncio.wait(waits, timeout=self.round_timeout)
            for w in late:
                w.cancel()
            for f in futs:
                if not f.done():
                    self.checks.unresolved.append(f.key)
                    self.sim.trace.note(sim.loop.time(), "data-stuck", f.key,
                                        _client_view(client, f.key))
                f.release()
            self.last_release = sim.loop.time()
            r += 1
            if late:
                return  # stuck: data_resolve reports it
            await rt.sleep(rng.uniform(0.2, 2.0))
        await client.close()
        self.clients.remove(client)
        self.finished[c] = True

    @staticmethod
    def _settled(f: Future) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        # settled once its value is here: a large one is done (REMOTE) before it is fetched
        f._core.waits.on_value(f._state, lambda: waiter.done() or waiter.set_result(None))
        return waiter

    def _round(self, client: AsyncClient, rng: random.Random, tag: str) -> list[Future]:
        out: list[Future] = []
        checks = self.checks

        def track(f: Future, value: Any) -> Future:
            e = checks.expecting(f.key, value)
            # a large value is done before its bytes are here (REMOTE): check it once fetched
            client._core.waits.on_value(f._state, lambda: self._resolved(f, e))
            out.append(f)
            return f

        makers, values = [], []
        for j in range(rng.randint(3, 5)):
            size = rng.randint(20, 200) * KIB
            replicas = 1 if rng.random() < 0.5 else None
            kw = {"replicas": replicas} if replicas else {}
            values.append(make(f"{tag}m{j}", size))
            makers.append(track(client.submit(make, f"{tag}m{j}", size, pure=False, **kw),
                                values[-1]))
        hot = self._keys_owned_by(self.sim.hosts[rng.randrange(self.sim.n)].name, f"{tag}d")
        digests = []
        for j in range(2):
            a, b = rng.sample(range(len(makers)), 2)
            kw = {"replicas": 1} if rng.random() < 0.5 else {}
            mixed = track(client.submit(mix, f"{tag}x{j}", makers[a], makers[b], pure=False,
                                        **kw), mix(f"{tag}x{j}", values[a], values[b]))
            expect = digest_of("", mix(f"{tag}x{j}", values[a], values[b]))
            digests.append(track(client.submit(digest_of, "", mixed, key=next(hot),
                                               pure=False), expect))
        digests.append(track(client.submit(digest_of, tag, *makers, key=next(hot), pure=False),
                             digest_of(tag, *values)))
        track(client.submit(total, *digests, pure=False),
              total(*(checks.expect[d.key].value for d in digests)))
        return out

    def _keys_owned_by(self, owner: str, prefix: str) -> Any:
        keys = (f"{prefix}{j}" for j in itertools.count())
        return (k for k in keys if self._owner(k) == owner)

    def _resolved(self, f: Future, e: Any) -> None:
        self.sim.trace.note(self.sim.loop.time(), "resolve", f.key, f.status)
        self.checks.resolved(f, e)

    # --- verdicts -------------------------------------------------------------------
    def figures(self) -> dict[str, int]:
        """How much of the data path the run went through, over every node life."""
        names = ("transfer_values_received", "transfer_resumed", "transfer_stalled",
                 "exec_lineage_recomputed", "exec_tasks_placed_by_locality", "exec_tasks_taken",
                 "store_spilled", "transfer_offers_joined", "transfer_offers_held")
        out = {n: sum(node.metrics.get(n) for node in self.every_node) for n in names}
        out["kills_mid_transfer"] = len(self.kills)
        out["large_values_right"] = self.checks.large_right
        return out

    def invariants(self, end: float) -> list[Invariant]:
        cfg = self.sim.config
        settle = fault_settle(cfg, self.sim.n)
        last = max((rec.end if rec.end is not None else rec.start
                    for rec in self.sim.injector.records if not rec.skipped), default=0.0)
        settled = last + settle <= end
        quiet = self.last_release + quiet_end(cfg) <= end
        left = None
        if all(self.finished):
            left = []
            for svc in self.services_of:
                if svc is not None and svc.core is not None and svc.node is not None:
                    left += leftovers(svc.node.name, svc.core, svc.data, svc.node.store)
        why = (f"the last fault ended {end - last:.1f}s and the last release was "
               f"{end - self.last_release:.1f}s before the end; orphans may take "
               f"{settle:.1f}s and {quiet_end(cfg):.1f}s")
        return self.checks.invariants(settled, left, quiet, why,
                                      safety=self.sim.scenario.mode == "safety")
