"""Lineage: results kept on fewer nodes than their spec, computed again when
every copy is lost.

A task's spec carries ``replicas`` (``R``, the client's ``replicas=`` or the
entry node's ``--replicas``). Its result is stored on the key's first ``R``
nodes (its *targets*); its spec is held by its *spec list*, the first
``max(R, --replicas)`` nodes. Both are prefixes of one ranking, so the owner
is first in both. When the spec list is longer than the targets (``R`` below
``--replicas``, e.g. ``replicas=1``), every node of the spec list keeps the
spec after the result is stored, in state ``KEPT``, for as long as some
subscriber holds the key:

* the coordinator keeps its own copy when it completes the task, and sends
  the spec to the spec holders that are not targets (``Keep``); the result is
  confirmed (the future may resolve) only once they acknowledged it, as the
  targets acknowledge the result, so a resolved future can always be computed
  again; a target keeps its copy of the spec when the ``Store`` arrives;
* a spec handed to a node that joined the spec list is followed by a
  ``Confirm``, so the newcomer keeps it too rather than run it;
* on a view change, the node that owns the key now and holds no copy of the
  result, when none of the old targets is alive, runs the task again from the
  spec (``KEPT`` -> ``own``); its inputs are asked for as for any task, and
  an input lost the same way is run again by its own new owner (recursively,
  for the inputs some subscriber still holds);
* at each tick, the owner of a kept spec that has held no copy of its result
  for ``lineage_patience`` ticks more, while a subscriber holds the key, runs
  it again too (a hand-over lost with a broken channel, a holder that
  restarted before anyone saw it die).

A future resolves once: holders keep the first result they store and clients
the first they receive. Sans-IO, over the shared :class:`~mesh.exec._table.Table`.
"""

from __future__ import annotations

from collections.abc import Callable

from mesh.config import DEFAULT
from mesh.exec._records import HELD, KEPT, SPEC_FN, Stored, Task, move
from mesh.exec._ring import Ring
from mesh.exec._table import Table
from mesh.protocol.messages import Ack, Keep


class Lineage:
    """Which specs this node keeps after their result is stored, and when a
    kept spec runs again."""

    def __init__(self, table: Table, release_deps: Callable[[Task], None],
                 patience: int = DEFAULT.lineage_patience) -> None:
        self.t = table
        self.release_deps = release_deps
        self.patience = patience

    def keeps(self, key: str, r: int) -> bool:
        """Whether this node keeps ``key``'s spec once its result (kept ``r``
        times) is stored: it is in the spec list, and the list is longer than
        the targets."""
        t = self.t
        holders = t.spec_list(key, r)
        return t.name in holders and len(holders) > min(r, len(t.ring.names))

    def stored(self, task: Task, force: bool = False) -> bool:
        """``task``'s result is stored: keep its spec (``KEPT``, dependencies
        released, nothing queued) if lineage needs it here (or ``force``).
        False: the caller drops the task as usual."""
        if task.state == KEPT:
            return True
        if not force and not self.keeps(task.key, self.t.replicas_of(task.spec)):
            return False
        if task.state != HELD:
            self.release_deps(task)
        move(task, "stored")
        task.missing.clear()
        task.depvals.clear()
        task.thief = ""
        task.stale = 0
        return True

    def adopt(self, key: str, spec: list, subs: set[str]) -> None:
        """A spec arrived for a key whose result this node holds already:
        keep it too if lineage needs it here."""
        t = self.t
        if key in t.tasks or not self.keeps(key, t.replicas_of(spec)):
            return
        spec[SPEC_FN] = t.intern(spec[SPEC_FN])
        task = Task(key, spec, set(subs))
        move(task, "stored")
        t.tasks[key] = task

    def keepers(self, key: str, st: Stored, spec: list) -> None:
        """The coordinator stored ``key``: send its spec to the spec holders
        that are not targets (:class:`Keep`); the result is confirmed only
        once they acknowledged it, so a resolved future can always be
        computed again."""
        t = self.t
        holders = t.spec_list(key, st.replicas or t.replicas)
        keepers = tuple(n for n in holders if n not in st.targets)
        if not keepers:
            return
        st.keepers = keepers
        st.spec = spec
        self.send_keep(key, st, sorted(st.subs))

    def send_keep(self, key: str, st: Stored, subs: list[str]) -> None:
        """(Again) to every keeper that has not acknowledged."""
        t = self.t
        alive = t.ring.names
        if st.spec is None:
            return
        msg = Keep(key, st.spec, subs, st.coord)
        for n in st.keepers:
            if n not in st.acks and n in alive:
                t.send(n, msg)

    def on_keep(self, msg: Keep) -> None:
        """Keep a spec a coordinator sent (see :meth:`keepers`); acknowledge."""
        t = self.t
        key = msg.key
        subs = t.subscribers(msg.subs)
        task = t.tasks.get(key)
        if task is None:
            spec = msg.spec
            spec[SPEC_FN] = t.intern(spec[SPEC_FN])
            task = t.tasks[key] = Task(key, spec, subs)
            t.orphan_if_unsubscribed(key, subs)
        else:
            task.subs.update(subs)
            t.orphaned.pop(key, None)
        extra = t.orphan_wants.pop(key, None)
        if extra:  # they asked us for the result: a run again tells them too
            task.subs |= extra - t.gone
        self.stored(task, force=True)
        if msg.coord != t.name:
            t.send(msg.coord, Ack(key, t.name))

    def missing(self, task: Task) -> bool:
        """At a tick: whether this node, the owner of a ``KEPT`` task, has
        held no copy of its result for more than :attr:`patience` ticks
        while a subscriber holds the key (then it runs it again)."""
        t, key = self.t, task.key
        pref = t.ring.pref(key)
        if key in t.results or not task.subs or not pref or pref[0] != t.name:
            task.stale = 0
            return False
        task.stale += 1
        return task.stale > self.patience

    def lost(self, key: str, task: Task, base: Ring, alive: frozenset[str]) -> bool:
        """Whether the owner of a ``KEPT`` task must run it again after a view
        change: no copy here, none of the targets of the old view alive, and
        a subscriber still holds the key."""
        t = self.t
        if task.state != KEPT or key in t.results or not task.subs:
            return False
        r = t.replicas_of(task.spec)
        return not any(n in alive for n in base.pref(key, r))
