"""View changes of the exec core: rebalancing held keys, and periodic ticks.

A component of :class:`mesh.exec._core.ExecCore` (see that module for the
protocol) over the shared :class:`~mesh.exec._table.Table`. Sans-IO.
"""

from __future__ import annotations

from mesh.config import DEFAULT
from mesh.exec._records import HELD, KEPT, READY, RUNNING, STOLEN, WAITING, Stored, Task, move
from mesh.exec._ring import Ring
from mesh.exec._running import Running
from mesh.exec._table import Subscriptions, Table
from mesh.protocol.messages import Confirm, Hold, Need, Recheck, Store

_RECHECK_BATCH = 512
"""Keys named in one :class:`Recheck` (a frame carries a few of them)."""


class ViewChanges:
    """``set_view``, ``rebalance_step`` and ``tick`` of one node's exec core."""

    def __init__(self, table: Table, subs: Subscriptions, running: Running, *,
                 orphan_grace: float = DEFAULT.orphan_grace,
                 stolen_patience: int = DEFAULT.stolen_patience,
                 recheck: float = DEFAULT.subscription_recheck) -> None:
        self.t = table
        self.subs = subs
        self.running = running
        self.orphan_grace = orphan_grace
        self.stolen_patience = stolen_patience
        self.recheck = recheck
        self._rechecked: float | None = None
        """When the subscribers of every held key were last asked."""
        self._base: Ring | None = None
        """The ring in force when the current rebalancing pass began."""
        self._todo_tasks: list[str] = []
        self._todo_results: list[str] = []
        self._ti = 0
        self._ri = 0
        self._stale: set[str] = set()
        """Keys waited for at the previous tick."""

    # ------------------------------------------------------------------- view
    def set_view(self, members: list[tuple[str, int]], now: float,
                 ring: Ring | None = None) -> None:
        """The alive members changed: ``[(name, workers), ...]`` including this
        node. Re-sends what this node waits for at once, and starts a
        rebalancing pass over the keys it holds (see :meth:`rebalance_step`):
        handing over specs and results whose holders changed, and taking over
        tasks whose owner left. ``ring``: the ring of ``members``, already
        built (in slices, by the driver)."""
        t = self.t
        t.now = now
        if ring is None or t.name not in ring.names:
            if t.name not in dict(members):
                members = [*members, (t.name, 1)]
            ring = t.new_ring(members)
        old = t.ring
        new = ring
        t.ring = new
        if self._base is None:
            self._base = old
        # (Re)start the pass over every key held, against the ring in force
        # when the pass began: re-examining a key is harmless (idempotent).
        self._todo_tasks, self._ti = sorted(t.tasks), 0
        self._todo_results, self._ri = sorted(t.results), 0
        dead = old.names - new.names
        t.gone = (t.gone | dead) - new.names
        for key in list(t.pending):
            was = old.pref(key)
            if dead or was != new.pref(key):
                t.asked.setdefault(key, set()).update(was)
                self.subs.request(key, t.pending[key])

    def rebalancing(self) -> bool:
        """Whether a rebalancing pass is in progress."""
        return self._base is not None

    def rebalance_step(self, budget: int) -> None:
        """Examine up to ``budget`` held keys after a view change. A pass over
        tens of thousands of stored results takes a second of CPU, so the
        driver runs it in slices and lets the event loop (and gossip) breathe
        in between."""
        base, new = self._base, self.t.ring
        if base is None:
            return
        alive = new.names
        dead = base.names - alive
        tasks, results = self.t.tasks, self.t.results
        while budget > 0 and self._ti < len(self._todo_tasks):
            key = self._todo_tasks[self._ti]
            self._ti += 1
            budget -= 1
            task = tasks.get(key)
            if task is not None:
                self.rebalance_task(key, task, base, new, alive, dead)
        while budget > 0 and self._ri < len(self._todo_results):
            key = self._todo_results[self._ri]
            self._ri += 1
            budget -= 1
            st = results.get(key)
            if st is not None:
                self.rebalance_result(key, st, base, new, alive, dead)
        if self._ti >= len(self._todo_tasks) and self._ri >= len(self._todo_results):
            self._base = None
            self._todo_tasks, self._todo_results = [], []

    def forget_dead_subscribers(self, key: str, subs: set[str], dead: frozenset[str]) -> None:
        """Drop subscribers that died; a key nobody subscribes to any more is
        kept for :attr:`orphan_grace` seconds (its client may re-attach)."""
        if dead and subs & dead:
            subs -= dead
            if not subs:
                self.t.orphaned.setdefault(key, self.t.now)
            for sub in dead:
                self.running.locality.forget(key, sub)

    def reclaim_if_thief_died(self, task: Task, alive: frozenset[str]) -> bool:
        """A task an idle node took runs here again if that node died."""
        if task.state == STOLEN and task.thief not in alive:
            self.running.reclaim(task)
            return True
        return False

    def rebalance_task(self, key: str, task: Task, base: Ring, new: Ring,
                       alive: frozenset[str], dead: frozenset[str]) -> None:
        me = self.t.name
        self.forget_dead_subscribers(key, task.subs, dead)
        if not self.reclaim_if_thief_died(task, alive) and task.thief == me:
            return  # we took it from its owner and run it wherever the key lives
        oldp, newp = base.compare(new, key, max(self.t.replicas_of(task.spec), self.t.replicas))
        if oldp == newp:
            return
        self.hand_over(oldp, newp, alive,
                       Hold(key, task.spec, sorted(task.subs), list(newp),
                            self.running.locality.located_subs(key)))
        if task.state == KEPT:  # the newcomers keep the spec rather than run it
            self.hand_over(oldp, newp, alive, Confirm(key))
        if newp[0] == me:
            if task.state == HELD:
                self.running.activate(task)
            elif self.running.lineage.lost(key, task, base, alive):
                self.t.metrics.inc("exec_lineage_recomputed")
                self.running.activate(task)
        elif task.state in (READY, WAITING):
            self.running.release_deps(task)  # the new owner queues it
            move(task, "hand_over")
            task.missing.clear()
            task.depvals.clear()
        if me not in newp and task.state != RUNNING:
            self.running.drop_task(key)

    def hand_over(self, oldp: tuple[str, ...], newp: tuple[str, ...],
                  alive: frozenset[str], msg: Hold | Store | Confirm) -> None:
        """The first surviving holder of the old list sends the key's spec or
        result to the nodes that joined its list."""
        if self.handler(oldp, alive) == self.t.name:
            for n in newp:
                if n not in oldp:
                    self.t.send(n, msg)

    def handler(self, oldp: tuple[str, ...], alive: frozenset[str]) -> str:
        return next((n for n in oldp if n in alive), self.t.name)

    def rebalance_result(self, key: str, st: Stored, base: Ring, new: Ring,
                         alive: frozenset[str], dead: frozenset[str]) -> None:
        t, me = self.t, self.t.name
        self.forget_dead_subscribers(key, st.subs, dead)
        oldp, newp = base.compare(new, key, st.replicas)
        if oldp != newp:
            if st.coord == me and not st.confirmed:
                self.retarget(key, st, newp)
            else:
                self.hand_over(oldp, newp, alive, Store(key, st.kind, st.payload, list(newp),
                                                        sorted(st.subs), me, True, st.replicas))
            if me not in newp and (st.coord != me or st.confirmed):
                del t.results[key]
                return
        if not st.confirmed and st.coord == me:
            self.running.check_confirmed(key, st)
        elif not st.confirmed and newp and newp[0] == me:
            st.confirmed = True  # its coordinator died: we hold a copy, so do others
            self.running.on_confirmed(key, st)

    def retarget(self, key: str, st: Stored, newp: tuple[str, ...]) -> None:
        """The holders of a result we coordinate changed before it was
        confirmed: the new list becomes its targets, and the future resolves
        only once they acknowledge it. (Confirming against the old targets
        would count a dead one as done while its successor holds nothing.)"""
        t, me = self.t, self.t.name
        st.targets = list(newp)
        tset = set(newp)
        st.notified |= {s for s in st.subs if s in tset and tset <= {me, s}}
        subs = sorted(st.subs)
        for n in newp:
            if n != me and n not in st.acks:
                t.send(n, Store(key, st.kind, st.payload, list(newp), subs, me, False,
                                st.replicas))

    # ------------------------------------------------------------------- tick
    def tick(self, now: float) -> None:
        """Ask again for keys this node has been waiting for since the last
        tick (a request may have reached a node that was no holder in the
        end), resend unacknowledged stores, reclaim silent stolen tasks. The
        core then handles its own messages and calls :meth:`expire_orphans`."""
        t = self.t
        t.now = now
        self.ask_again()
        self.resend_unacknowledged()
        if self._rechecked is None:
            self._rechecked = now
        elif now - self._rechecked >= self.recheck:
            self._rechecked = now
            self.recheck_subscribers()
        lost = []
        for task in t.tasks.values():
            if task.state == STOLEN:
                task.stale += 1
                if task.stale > self.stolen_patience:
                    t.metrics.inc("exec_stolen_tasks_reclaimed")
                    self.running.reclaim(task)
            elif task.state == KEPT and self.running.lineage.missing(task):
                lost.append(task)
        for task in lost:
            if task.state == KEPT:
                t.metrics.inc("exec_lineage_recomputed")
                self.running.activate(task)

    def ask_again(self) -> None:
        t = self.t
        stale = [k for k in t.pending if k in self._stale]
        for key in stale:
            spec = t.pending[key]
            self.subs.request(key, spec)
            if spec is None:
                if key in t.fetch:  # a client here waits for its bytes: every copy
                    self.subs.on_need(Need(key))  # may be gone; its client resubmits
                # A dependency nobody answered for: its holders may all have
                # died. Ask the dependents' subscribers, who may hold its spec.
                for tkey in t.waiters.get(key, ()):
                    task = t.tasks.get(tkey)
                    for sub in sorted(task.subs) if task is not None else ():
                        t.send(sub, Need(key))
        self._stale = set(t.pending)

    def resend_unacknowledged(self) -> None:
        """Stores (or their acknowledgements) lost with a broken channel: send
        the result again to the targets that have not acknowledged it."""
        t = self.t
        alive = t.ring.names
        for key, st in t.results.items():
            if st.coord == t.name and not st.confirmed:
                if st.stale:
                    subs = sorted(st.subs)
                    for n in st.targets:
                        if n not in st.acks and n in alive:
                            t.send(n, Store(key, st.kind, st.payload, st.targets, subs,
                                            t.name, False, st.replicas))
                    self.running.lineage.send_keep(key, st, subs)
                st.stale = True

    def recheck_subscribers(self) -> None:
        """Ask the subscribers of every key held here whether they still
        need it (:class:`Recheck`); each answers with an unsubscribe for what
        it released. A subscriber that is not in the view is dropped, as at a
        view change (a store or hold that was delayed can name one that died
        before this node, restarted since, ever saw it); a key left held for
        nobody is orphaned, so it expires after the grace."""
        t = self.t
        alive = t.ring.names
        asks: dict[str, list[str]] = {}
        held = [(k, st.subs) for k, st in t.results.items()]
        held += [(k, task.subs) for k, task in t.tasks.items()
                 if task.state != RUNNING and k not in t.results]
        for key, subs in held:
            subs.intersection_update(alive)
            if not subs:
                t.orphaned.setdefault(key, t.now)
            for sub in subs:
                asks.setdefault(sub, []).append(key)
        for key, wants in list(t.orphan_wants.items()):
            wants.intersection_update(alive)
            if not wants:
                del t.orphan_wants[key]
            for sub in wants:
                asks.setdefault(sub, []).append(key)
        for sub in sorted(asks):
            keys = sorted(set(asks[sub]))
            for i in range(0, len(keys), _RECHECK_BATCH):
                t.send(sub, Recheck(keys[i:i + _RECHECK_BATCH], t.name))

    def expire_orphans(self, now: float) -> None:
        """Drop results and tasks nobody re-attached to within the grace."""
        t = self.t
        for key in [k for k, since in t.orphaned.items() if now - since >= self.orphan_grace]:
            del t.orphaned[key]
            st = t.results.get(key)
            if st is not None and not st.subs:
                del t.results[key]
            task = t.tasks.get(key)
            if task is not None and not task.subs and task.state != RUNNING:
                self.running.drop_task(key)
