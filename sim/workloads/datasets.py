"""The ``datasets`` workload: word counts and sorts on the mesh while faults roll.

Every node runs the real :class:`mesh.exec.ExecService` on a
:class:`sim.executor.SimExecutor` (workers crash at random, 1% of jobs), as in
the ``tasks`` workload. Two simulated clients (real
:class:`mesh.client.AsyncClient` objects on client hosts) run rounds from the
end of the join until shortly after the fault phase. Each round builds, from
the client's seeded random stream:

* a word count: lines whose words follow a skewed law (one hot word, a tail
  of rare ones), ``from_sequence(lines, npartitions=m).flat_map(str.split)
  .map(one_pair).reduce_by_key(operator.add, npartitions=n).collect()``,
  against ``collections.Counter``;
* a sort: integers with many ties, ``sort_by(key, reverse, npartitions=n)``
  with ``collect()`` and ``take(k)``, against ``sorted(xs, key=key,
  reverse=reverse)`` (exactly: ties keep their order, as ``sorted`` does).

Invariants, judged from what the client sees:

* ``datasets_complete``: every action of every round returned (no error,
  no timeout) before the end of the run; one still running at the end is
  ``inconclusive`` in safety mode (its faults last to the end), a failure in
  liveness mode;
* ``datasets_equal_reference``: every result equals the reference, item for
  item (a count counted twice, a lost partition, a word in two reduce
  partitions or a tie out of order fails it).
"""

from __future__ import annotations

import asyncio
import collections
import operator
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mesh.exec import ExecService
from sim.executor import SimExecutor
from sim.invariants import Invariant
from sim.runner import SECRET
from sim.runtime import SimRuntime

if TYPE_CHECKING:
    from mesh.client import AsyncClient
    from sim.runner import Simulation

__all__ = ["DatasetsWorkload"]

CLIENTS = 2
QUIET_END = 20.0
"""Simulated seconds left without new work at the end of the run."""
VOCABULARY = 60


# --- the functions the mesh runs (cloudpickled; this module is importable)
def one_pair(word: str) -> tuple[str, int]:
    return (word, 1)


def mod7(x: int) -> int:
    return x % 7


def words(rng: random.Random, lines: int) -> list[str]:
    """Lines of a skewed vocabulary: ``w0`` is a hot key (about a third of
    the words), the rest follow 1/rank."""
    vocab = [f"w{i}" for i in range(VOCABULARY)]
    weights = [VOCABULARY / 2] + [1.0 / (r + 1) * 10 for r in range(1, VOCABULARY)]
    return [" ".join(rng.choices(vocab, weights, k=rng.randrange(10))) for _ in range(lines)]


@dataclass
class _Stats:
    actions: int = 0
    returned: int = 0
    right: int = 0
    in_flight: dict[str, float] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class DatasetsWorkload:
    name = "datasets"

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.stats = _Stats()
        self.clients: list[AsyncClient] = []
        self.rounds = [0] * CLIENTS
        spread = sim.scenario.spread()
        _, fault_end = sim.scenario.window()
        self.t0 = spread + 3.0
        self.work_end = max(self.t0 + 5.0, min(fault_end + 5.0,
                                               sim.scenario.duration - QUIET_END))
        self.action_timeout = max(20.0, sim.scenario.duration - QUIET_END / 2 - self.t0)
        self.client_hosts = [sim.net.add_host((f"10.254.0.{c + 1}", 7000), f"dclient{c}")
                             for c in range(CLIENTS)]

    # --- the harness's calls ------------------------------------------------------
    def services(self, i: int, runtime: SimRuntime, life: int) -> list[Any]:
        name = self.sim.hosts[i].name
        ex = SimExecutor(runtime, random.Random(f"{self.sim.seed}:{name}:{life}:exec"),
                         crash_rate=0.01)
        return [ExecService(ex, window=64)]

    def begin(self) -> None:
        for c in range(CLIENTS):
            self.sim._spawn(self._client(c), f"dclient{c}")

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        self.clients = []

    # --- the clients ----------------------------------------------------------------
    async def _client(self, c: int) -> None:
        from sim.workloads import start_client

        sim = self.sim
        client, rt, rng = await start_client(self, c, "datasets", f"sim{sim.seed}d{c}", SECRET,
                                             self.action_timeout)
        r = 0
        while sim.loop.time() < self.work_end or r == 0:
            if not await self._round(client, rng, f"c{c}r{r}"):
                return  # stuck: datasets_complete reports it
            r += 1
            self.rounds[c] = r
            await rt.sleep(rng.uniform(0.2, 2.0))
        self.sim.trace.note(sim.loop.time(), "dclient-done", c, r)
        await client.close()
        self.clients.remove(client)

    async def _round(self, client: AsyncClient, rng: random.Random, tag: str) -> bool:
        lines = words(rng, rng.randint(10, 60))
        expected: dict[str, int] = dict(collections.Counter(
            w for line in lines for w in line.split()))
        counts = (client.from_sequence(lines, npartitions=rng.randint(1, 5))
                  .flat_map(str.split).map(one_pair)
                  .reduce_by_key(operator.add, npartitions=rng.randint(1, 4)))
        got = await self._action(f"{tag} word count", counts.collect())
        if got is None:
            return False
        self._judge(f"{tag} word count", len(got) == len(expected) and dict(got) == expected,
                    f"{len(got)} pairs, {sum(v for _, v in got)} words; expected "
                    f"{len(expected)} pairs, {sum(expected.values())} words")
        xs = [rng.randrange(-40, 40) for _ in range(rng.randint(0, 90))]
        key = rng.choice((None, mod7))
        reverse = rng.random() < 0.5
        ordered = sorted(xs, key=key, reverse=reverse)
        ds = client.from_sequence(xs, npartitions=rng.randint(1, 5)).sort_by(
            key, reverse, npartitions=rng.randint(1, 4))
        where = f"{tag} sort_by(key={key and key.__name__}, reverse={reverse})"
        got = await self._action(where, ds.collect())
        if got is None:
            return False
        self._judge(where, got == ordered, f"{got[:8]}... expected {ordered[:8]}...")
        k = rng.randint(0, 6)
        got = await self._action(f"{where}.take({k})", ds.take(k))
        if got is None:
            return False
        self._judge(f"{where}.take({k})", got == ordered[:k], f"{got} expected {ordered[:k]}")
        return True

    async def _action(self, what: str, run: Any) -> Any:
        """The action's result, or None (counted as failed) when it raised or
        did not return within the timeout."""
        s = self.stats
        s.actions += 1
        s.in_flight[what] = self.sim.loop.time()
        try:
            got = await asyncio.wait_for(run, self.action_timeout)
            s.returned += 1
            return got
        except TimeoutError:
            self.stats.failed.append(f"{what}: no result after {self.action_timeout:.0f}s")
        except Exception as exc:  # the verdict reports it
            self.stats.failed.append(f"{what}: {type(exc).__name__}: {exc}")
        finally:
            del s.in_flight[what]
        self.sim.trace.note(self.sim.loop.time(), "dataset-failed", what)
        return None

    def _judge(self, what: str, ok: bool, detail: str) -> None:
        self.sim.trace.note(self.sim.loop.time(), "dataset", what, ok)
        if ok:
            self.stats.right += 1
        else:
            self.stats.wrong.append(f"{what}: {detail}")

    def invariants(self, end: float) -> list[Invariant]:
        s = self.stats
        detail = f"{s.returned} of {s.actions} actions returned in {sum(self.rounds)} rounds"
        if s.failed:
            complete, detail = "fail", f"{detail}; first failure: {s.failed[0]}"
        elif s.in_flight:
            what, since = next(iter(s.in_flight.items()))
            detail += f"; {what} still running at the end (since {since:.1f}s)"
            # faults last to the end in safety mode: liveness is not promised
            complete = "inconclusive" if self.sim.scenario.mode == "safety" else "fail"
        else:
            complete = "pass"
        return [
            Invariant("datasets_complete", complete, detail),
            Invariant("datasets_equal_reference", "fail" if s.wrong else "pass",
                      f"{s.right} results equal the reference, {len(s.wrong)} differ"
                      + (f"; first: {s.wrong[0]}" if s.wrong else "")),
        ]
