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

* the coordinator keeps its own copy when it completes the task, and tells
  the spec holders that are not targets that the result is stored (a
  ``Confirm`` for a key they hold no result of); a target keeps it when the
  ``Store`` arrives;
* a spec handed to a node that joined the spec list is followed by a
  ``Confirm``, so the newcomer keeps it too rather than run it;
* on a view change, the node that owns the key now and holds no copy of the
  result, when none of the old targets is alive, runs the task again from the
  spec (``KEPT`` -> ``own``); its inputs are asked for as for any task, and
  an input lost the same way is run again by its own new owner (recursively,
  for the inputs some subscriber still holds).

A future resolves once: holders keep the first result they store and clients
the first they receive. Sans-IO, over the shared :class:`~mesh.exec._table.Table`.
"""

from __future__ import annotations

from collections.abc import Callable

from mesh.exec._records import HELD, KEPT, SPEC_FN, Stored, Task, move
from mesh.exec._ring import Ring
from mesh.exec._table import Table
from mesh.protocol.messages import Confirm


class Lineage:
    """Which specs this node keeps after their result is stored, and when a
    kept spec runs again."""

    def __init__(self, table: Table, release_deps: Callable[[Task], None]) -> None:
        self.t = table
        self.release_deps = release_deps

    def keeps(self, key: str, r: int) -> bool:
        """Whether this node keeps ``key``'s spec once its result (kept ``r``
        times) is stored: it is in the spec list, and the list is longer than
        the targets."""
        t = self.t
        holders = t.spec_list(key, r)
        return t.name in holders and len(holders) > min(r, len(t.ring.names))

    def stored(self, task: Task) -> bool:
        """``task``'s result is stored: keep its spec (``KEPT``, dependencies
        released, nothing queued) if lineage needs it here. False: the caller
        drops the task as usual."""
        if task.state == KEPT:
            return True
        if not self.keeps(task.key, self.t.replicas_of(task.spec)):
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

    def announce(self, key: str, st: Stored) -> None:
        """The coordinator confirmed ``key``: tell the spec holders that hold
        no copy that the result is stored (they keep the spec, not run it)."""
        t = self.t
        r = st.replicas or t.replicas
        holders = t.spec_list(key, r)
        if len(holders) <= len(st.targets):
            return
        msg = Confirm(key)
        for n in holders:
            if n not in st.targets and n != t.name:
                t.send(n, msg)

    def lost(self, key: str, task: Task, base: Ring, alive: frozenset[str]) -> bool:
        """Whether the owner of a ``KEPT`` task must run it again after a view
        change: no copy here, none of the targets of the old view alive, and
        a subscriber still holds the key."""
        t = self.t
        if task.state != KEPT or key in t.results or not task.subs:
            return False
        r = t.replicas_of(task.spec)
        return not any(n in alive for n in base.pref(key, r))
