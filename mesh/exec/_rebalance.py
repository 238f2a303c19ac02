"""View changes of the exec core: rebalancing held keys, and periodic ticks.

Part of :class:`mesh.exec._core.ExecCore` (a mixin; see that module for the
protocol). Sans-IO like the rest of the core.
"""

from __future__ import annotations

from mesh.exec._effects import Effect
from mesh.exec._records import HELD, READY, RUNNING, STOLEN, WAITING, Stored, Task
from mesh.exec._ring import Ring
from mesh.protocol.messages import Hold, Need, Store

STOLEN_PATIENCE = 3
"""Ticks a stolen task may go without a result before its owner runs it
itself (the thief may have never received it)."""

ORPHAN_GRACE = 60.0
"""Seconds a result or task whose every subscriber died is kept, so that a
client whose entry node died can re-attach through another node."""


class ViewChanges:
    """``set_view``, ``rebalance_step`` and ``tick`` of :class:`ExecCore`."""

    # ------------------------------------------------------------------- view
    def set_view(self, members: list[tuple[str, int]], now: float) -> list[Effect]:
        """The alive members changed: ``[(name, workers), ...]`` including this
        node. Re-sends what this node waits for at once, and starts a
        rebalancing pass over the keys it holds (see :meth:`rebalance_step`):
        handing over specs and results whose holders changed, and taking over
        tasks whose owner left."""
        self.now = now
        if self.name not in dict(members):
            members = [*members, (self.name, 1)]
        old = self.ring
        new = Ring(members, self.replicas, **self._ring_opts)
        self.ring = new
        if self._base is None:
            self._base = old
        # (Re)start the pass over every key held, against the ring in force
        # when the pass began: re-examining a key is harmless (idempotent).
        self._todo_tasks, self._ti = sorted(self.tasks), 0
        self._todo_results, self._ri = sorted(self.results), 0
        dead = old.names - new.names
        for key in list(self.pending):
            if dead or old.pref(key) != new.pref(key):
                self._request(key, self.pending[key])
        return self._effects()

    def rebalancing(self) -> bool:
        """Whether a rebalancing pass is in progress."""
        return self._base is not None

    def rebalance_step(self, budget: int) -> list[Effect]:
        """Examine up to ``budget`` held keys after a view change;
        :meth:`rebalancing` says whether keys remain. A pass over tens of
        thousands of stored results takes a second of CPU, so the driver runs
        it in slices and lets the event loop (and gossip) breathe in between."""
        base, new = self._base, self.ring
        if base is None:
            return []
        alive = new.names
        dead = base.names - alive
        tasks, results = self.tasks, self.results
        while budget > 0 and self._ti < len(self._todo_tasks):
            key = self._todo_tasks[self._ti]
            self._ti += 1
            budget -= 1
            task = tasks.get(key)
            if task is not None:
                self._rebalance_task(key, task, base, new, alive, dead)
        while budget > 0 and self._ri < len(self._todo_results):
            key = self._todo_results[self._ri]
            self._ri += 1
            budget -= 1
            st = results.get(key)
            if st is not None:
                self._rebalance_result(key, st, base, new, alive, dead)
        if self._ti >= len(self._todo_tasks) and self._ri >= len(self._todo_results):
            self._base = None
            self._todo_tasks, self._todo_results = [], []
        return self._effects()

    def _rebalance_task(self, key: str, task: Task, base: Ring, new: Ring,
                        alive: frozenset[str], dead: frozenset[str]) -> None:
        if dead and task.subs & dead:
            task.subs -= dead
            if not task.subs:
                self.orphaned.setdefault(key, self.now)
        if task.state == STOLEN and task.thief not in alive:
            self._queue(task)  # the thief died: run it here (or hand it over below)
        elif task.thief == self.name:
            return  # we took it from its owner and run it wherever the key lives
        oldp, newp = base.compare(new, key)
        if oldp == newp:
            return
        handler = next((n for n in oldp if n in alive), self.name)
        if handler == self.name:
            for n in newp:
                if n not in oldp:
                    self._send(n, Hold(key, task.spec, sorted(task.subs), list(newp)))
        if newp[0] == self.name:
            if task.state == HELD:
                self._activate(task)
        elif task.state in (READY, WAITING):
            self._release_deps(task)  # the new owner queues it
            task.state = HELD
            task.missing.clear()
            task.depvals.clear()
        if self.name not in newp and task.state != RUNNING:
            self._drop_task(key)

    def _rebalance_result(self, key: str, st: Stored, base: Ring, new: Ring,
                          alive: frozenset[str], dead: frozenset[str]) -> None:
        if dead and st.subs & dead:
            st.subs -= dead
            if not st.subs:
                self.orphaned.setdefault(key, self.now)
        oldp, newp = base.compare(new, key)
        if oldp != newp:
            handler = next((n for n in oldp if n in alive), self.name)
            if handler == self.name:
                for n in newp:
                    if n not in oldp:
                        self._send(n, Store(key, st.kind, st.payload, list(newp),
                                            sorted(st.subs), self.name, True))
            if self.name not in newp and (st.coord != self.name or st.confirmed):
                del self.results[key]
                return
        if not st.confirmed and st.coord == self.name:
            self._check_confirmed(key, st)
        elif not st.confirmed and newp and newp[0] == self.name:
            st.confirmed = True  # its coordinator died: we hold a copy, so do others
            self._on_confirmed(key, st)

    def tick(self, now: float) -> list[Effect]:
        """Drop results and tasks nobody re-attached to within the grace, and
        ask again for keys this node has been waiting for since the last tick
        (a request may have reached a node that was no holder in the end)."""
        self.now = now
        stale = [k for k in self.pending if k in self._stale]
        for key in stale:
            spec = self.pending[key]
            self._request(key, spec)
            if spec is None:
                # A dependency nobody answered for: its holders may all have
                # died. Ask the dependents' subscribers, who may hold its spec.
                for tkey in self.waiters.get(key, ()):
                    task = self.tasks.get(tkey)
                    for sub in sorted(task.subs) if task is not None else ():
                        self._send(sub, Need(key))
        self._stale = set(self.pending)
        # Stores (or their acknowledgements) lost with a broken channel: send
        # the result again to the targets that have not acknowledged it.
        alive = self.ring.names
        for key, st in self.results.items():
            if st.coord == self.name and not st.confirmed:
                if st.stale:
                    subs = sorted(st.subs)
                    for n in st.targets:
                        if n not in st.acks and n in alive:
                            self._send(n, Store(key, st.kind, st.payload, st.targets, subs,
                                                self.name, False))
                st.stale = True
        for task in self.tasks.values():
            if task.state == STOLEN:
                task.stale += 1
                if task.stale > STOLEN_PATIENCE:
                    self.metrics.inc("exec_stolen_tasks_reclaimed")
                    self._queue(task)
        self._flush_local()
        for key in [k for k, t in self.orphaned.items() if now - t >= ORPHAN_GRACE]:
            del self.orphaned[key]
            st = self.results.get(key)
            if st is not None and not st.subs:
                del self.results[key]
            task = self.tasks.get(key)
            if task is not None and not task.subs and task.state != RUNNING:
                self._drop_task(key)
        return self._effects()
