"""Locality: a task whose inputs are large runs where most of its input bytes
are, not where its key is owned.

The rule (``locality_bytes`` is ``Config.locality_bytes``, 1 MiB):

* The owner asks a dependency's holders to *locate* it (``Want`` with
  ``locate``) unless a client attached here waits for that value itself. A
  holder answers with the value as usual when it is smaller than
  ``locality_bytes`` (or a failure), and with :class:`Located` (kind, size,
  holder) otherwise, so the owner does not fetch it yet.
* Once every input is known (values or locations), the owner sums the input
  bytes per node (values it holds count for itself). If one other node holds
  at least half of them and at least ``locality_bytes``, and that node's
  queue (gossip metadata ``queue``) is not deeper than the owner's by more
  than ``steal_min_queue``, the owner hands the task to it, as it hands a
  stolen task (``Grant``, state ``STOLEN``: taken back and its inputs fetched
  if that node dies or stays silent). The owner still holds the spec and
  stores the result with the key's other targets; the runner coordinates the
  result as a thief does. Otherwise the owner fetches the located inputs
  (``Want`` without ``locate``) and runs the task itself.
* An idle node that steals is given the queued tasks with the fewest input
  bytes first (:meth:`mesh.exec._running.Running.on_steal`).

A task restricted to named nodes (``submit(..., workers=...)``, the spec's
``workers``) skips the rule: its owner runs it when the owner is named, and
hands it otherwise to the named alive node with the shortest queue (ties by
name), which fetches its inputs. Nobody steals it but a named node; taken
back from a dead runner, it goes to another named node. If no named node is
alive when it is to run, it fails (``TaskFailed`` naming them).

Sans-IO, over the shared :class:`~mesh.exec._table.Table`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesh.config import DEFAULT
from mesh.exec._records import SPEC_WORKERS, WAITING, Task, move
from mesh.exec._table import Table
from mesh.protocol import payload as P
from mesh.protocol.messages import Grant, Located, Result, Want

if TYPE_CHECKING:
    from mesh.exec._running import Running


def nbytes(payload: Any) -> int:
    """The size of a result payload: bytes, or a store ``Value``."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return len(payload)
    return int(getattr(payload, "nbytes", 0))


def input_bytes(task: Task) -> int:
    """Bytes of the input values a task holds."""
    return sum(nbytes(v[1]) for v in task.depvals.values())


class Locality:
    """Where a task with large inputs runs, and what holders answer."""

    def __init__(self, table: Table, running: Running,
                 slack: int = DEFAULT.steal_min_queue) -> None:
        self.t = table
        self.running = running
        self.slack = slack

    # ------------------------------------------------------------ holder side
    def note_want(self, msg: Want) -> None:
        """Remember whether ``msg.sub`` wants ``msg.key`` located or sent."""
        if msg.locate:
            self.t.locators.setdefault(msg.key, set()).add(msg.sub)
        else:
            self.forget(msg.key, msg.sub)

    def note_located(self, key: str, subs: list[str]) -> None:
        """``subs`` want only the location of ``key``'s result (a
        :class:`Hold` or :class:`Grant` said so)."""
        if subs:
            self.t.locators.setdefault(key, set()).update(subs)

    def located_subs(self, key: str) -> list[str]:
        """The subscribers of ``key`` that want only its location, for a
        message that hands its task to another node."""
        return sorted(self.t.locators.get(key, ()))

    def forget(self, key: str, sub: str) -> None:
        subs = self.t.locators.get(key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.t.locators[key]

    def result_for(self, key: str, kind: int, payload: Any, sub: str) -> Result | Located:
        """The message that gives subscriber ``sub`` the result of ``key``."""
        t = self.t
        subs = t.locators.get(key)
        if subs and sub in subs and not P.is_failure(kind):
            n = nbytes(payload)
            if n >= t.locality_bytes:
                return Located(key, kind, n, t.name)
        return Result(key, kind, payload)

    # ------------------------------------------------------------- owner side
    def locates(self, dep: str) -> bool:
        """Whether an owner asks to locate ``dep`` rather than fetch it: unless
        a client attached here asked for its value (a client waiting only to
        learn it is done is told ``REMOTE``, :meth:`Subscriber.done`)."""
        return dep not in self.t.fetch

    def on_located(self, msg: Located) -> None:
        t, key = self.t, msg.key
        fetched = key in t.fetch
        if fetched:
            # A client here asked for the value itself, and the holder still has
            # us down as a locator (its answer crossed our fetch): ask it again.
            t.send(msg.holder, Want(key, t.name, False))
        if key not in t.locating:
            return  # we fetch it now: its value follows
        if t.watch.get(key):  # clients attached here hold it: it is done, kept there
            self.running.subs.located(key, msg.nbytes)
        if not fetched:
            t.pending.pop(key, None)  # answered: no need to ask again at the next tick
        waiting = t.waiters.get(key)
        if not waiting:
            return
        for tkey in list(waiting):
            task = t.tasks.get(tkey)
            if task is None or task.state != WAITING or key not in task.missing:
                continue
            task.missing.discard(key)
            waiting.remove(tkey)
            if task.where is None:
                task.where = {}
            task.where[key] = (msg.nbytes, msg.holder)
            if not task.missing:
                self.running.inputs_known(task)
        if not waiting:
            del t.waiters[key]

    def runner(self, task: Task) -> str | None:
        """The node that holds most of ``task``'s input bytes, if it is to run
        it (see the module's rule); this node's name otherwise. For a task
        restricted to named nodes, one of them (None if none is alive)."""
        t = self.t
        named = task.spec[SPEC_WORKERS]
        if named:
            if t.name in named:
                return t.name
            alive = [n for n in named if n in t.ring.names]
            return min(alive, key=lambda n: (t.depths.get(n, 0), n)) if alive else None
        by: dict[str, int] = {t.name: input_bytes(task)}
        for n, holder in (task.where or {}).values():
            by[holder] = by.get(holder, 0) + n
        total = sum(by.values())
        best = max(sorted(by), key=by.__getitem__)
        if (best != t.name and best in t.ring.names and by[best] >= t.locality_bytes
                and 2 * by[best] >= total
                and t.depths.get(best, 0) <= len(t.ready) + self.slack):
            return best
        return t.name

    def decide(self, task: Task) -> None:
        """Every input of ``task`` is known: run it where they are, or fetch."""
        t = self.t
        where = task.where or {}
        runner = self.runner(task) if where or task.spec[SPEC_WORKERS] else t.name
        task.where = None
        if runner is None:
            t.metrics.inc("exec_tasks_no_worker")
            named = ", ".join(task.spec[SPEC_WORKERS])
            self.running.complete(task, P.FAILED, (
                f"task {task.key!r} may run only on {named} (workers=), and none of them is "
                f"a live member of the mesh as seen from {t.name!r}").encode())
            return
        if runner != t.name:
            move(task, "give")
            task.thief = runner
            task.stale = 0
            t.metrics.inc("exec_tasks_placed_by_locality")
            t.send(runner, Grant(task.key, task.spec, sorted(task.subs), dict(task.depvals),
                                 self.located_subs(task.key)))
            return
        if where:
            self.running.await_deps(task, sorted(where), count=False, locate=False)
        else:
            self.running.queue(task, "deps_ready")
