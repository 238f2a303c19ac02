"""The holder side of the exec core: keeping specs and results for the keys
this node is in the preference list of, and answering for them.

A component of :class:`mesh.exec._core.ExecCore` (see that module for the
protocol) over the shared :class:`~mesh.exec._table.Table`. Sans-IO.
"""

from __future__ import annotations

from mesh.exec._records import KEPT, RUNNING, SPEC_FN, Stored, Task
from mesh.exec._running import Running
from mesh.exec._subscriber import Subscriber
from mesh.exec._table import Table
from mesh.protocol.messages import Ack, Confirm, Hold, Store, Unsubscribe, Want


class Holder:
    """Specs and results held here, and the subscribers to notify."""

    def __init__(self, table: Table, subs: Subscriber, running: Running) -> None:
        self.t = table
        self.subs = subs
        self.running = running

    def on_hold(self, msg: Hold) -> None:
        t = self.t
        key, spec, sent_to = msg.key, msg.spec, msg.sent_to
        subs = t.subscribers(msg.subs)
        self.running.locality.note_located(key, [s for s in msg.located if s in subs])
        if self.attach(key, subs):
            if key in t.results:
                self.running.lineage.adopt(key, spec, subs)
            return
        extra = t.orphan_wants.pop(key, None)
        if extra:
            subs |= extra - t.gone
        spec[SPEC_FN] = t.intern(spec[SPEC_FN])
        task = Task(key, spec, subs)
        t.tasks[key] = task
        t.orphan_if_unsubscribed(key, subs)
        pref = t.spec_list(key, t.replicas_of(spec))
        missed = [n for n in pref if n not in sent_to and n != t.name]
        if missed:  # our views differ: make sure the holders we see get it too
            fwd = Hold(key, spec, sorted(subs), sorted({*sent_to, *pref}),
                       self.running.locality.located_subs(key))
            for n in missed:
                t.send(n, fwd)
        if pref and pref[0] == t.name:
            self.running.activate(task)

    def on_want(self, msg: Want) -> None:
        t = self.t
        if msg.sub in t.gone:
            return  # sent before its node died or was cut off (see Table.gone)
        self.running.locality.note_want(msg)
        if not self.attach(msg.key, {msg.sub}):
            t.orphan_wants.setdefault(msg.key, set()).add(msg.sub)

    def attach(self, key: str, subs: set[str]) -> bool:
        """Subscribe ``subs`` to what this node holds of ``key`` (its result,
        answered at once, or its task); False if it holds nothing."""
        t = self.t
        st = t.results.get(key)
        if st is not None:
            self.answer(key, st, subs)
            return True
        task = t.tasks.get(key)
        if task is not None:
            task.subs.update(subs)
            t.orphaned.pop(key, None)
            return True
        return False

    def answer(self, key: str, st: Stored, subs: set[str]) -> None:
        """Subscribe ``subs`` to a stored result; send it if it may be delivered."""
        t = self.t
        t.orphaned.pop(key, None)
        for sub in sorted(subs):
            st.subs.add(sub)
            if st.confirmed or st.coord != t.name:
                if sub == t.name:
                    self.subs.deliver(key, st.kind, st.payload)
                else:
                    t.send(sub, self.running.locality.result_for(key, st.kind, st.payload, sub))

    def on_store(self, msg: Store) -> None:
        t = self.t
        key, kind, payload, targets = msg.key, msg.kind, msg.payload, msg.targets
        coord, confirmed = msg.coord, msg.confirmed
        # Every subscriber the coordinator names, even one that left our view:
        # views differ after a partition, and dropping a live subscriber here
        # lets another's release free the only copy it still needs. One that
        # really left is dropped by the next recheck (recheck_subscribers).
        subs = set(msg.subs)
        task = t.tasks.get(key)
        extra = t.orphan_wants.pop(key, set()) - t.gone
        if task is not None:
            extra |= task.subs
            if self.running.lineage.stored(task):
                pass  # kept: the spec stays to compute the result again if it is lost
            elif task.state != RUNNING:
                self.running.drop_task(key)
            else:
                task.subs.clear()  # the outcome of our own run is no longer needed
        wanted = extra - subs - {t.name}
        st = t.results.get(key)
        if st is None:
            st = Stored(kind, payload, subs | extra, list(targets), coord, replicas=msg.replicas)
            st.confirmed = confirmed or set(targets) <= {coord, t.name}
            t.results[key] = st
            t.orphan_if_unsubscribed(key, st.subs)
            pref = t.ring.pref(key, msg.replicas)
            missed = [n for n in pref if n not in targets and n != t.name]
            if missed:  # our views differ: make sure the holders we see get it too
                fwd = Store(key, kind, payload, sorted({*targets, *pref}), sorted(st.subs),
                            t.name, st.confirmed, msg.replicas)
                for n in missed:
                    t.send(n, fwd)
        else:
            st.subs.update(subs)
            st.subs |= extra
            if confirmed:
                st.confirmed = True
        if coord != t.name:
            t.send(coord, Ack(key, t.name))
        if st.confirmed and (t.name in subs or self.subs.waits_for(key)):
            self.subs.arrived(key, kind, payload)
        for sub in sorted(wanted):  # subscribers the coordinator did not know about
            t.send(sub, self.running.locality.result_for(key, kind, payload, sub))

    def on_ack(self, msg: Ack) -> None:
        st = self.t.results.get(msg.key)
        if st is None or st.confirmed:
            return
        st.acks.add(msg.holder)
        self.running.check_confirmed(msg.key, st)

    def on_confirm(self, msg: Confirm) -> None:
        key = msg.key
        st = self.t.results.get(key)
        if st is None:  # a spec holder that holds no copy: the result is stored
            task = self.t.tasks.get(key)
            if task is not None:
                self.running.lineage.stored(task)
            return
        if not st.confirmed:
            if st.coord == self.t.name:
                # We coordinate this result (a thief's or a locality runner's):
                # a spec holder's Confirm does not say our targets hold it, and
                # confirming here would skip telling the subscribers.
                self.running.check_confirmed(key, st)
                return
            st.confirmed = True
            if self.subs.waits_for(key):
                self.subs.deliver(key, st.kind, st.payload)

    def on_unsubscribe(self, msg: Unsubscribe) -> None:
        t = self.t
        key, sub = msg.key, msg.sub
        self.running.locality.forget(key, sub)
        wants = t.orphan_wants.get(key)
        if wants is not None:
            wants.discard(sub)
            if not wants:
                del t.orphan_wants[key]
        st = t.results.get(key)
        if st is not None:
            st.subs.discard(sub)
            if st.coord == t.name:
                # Our store may reach a replica after sub's own release did, and
                # name sub as a subscriber there: release it behind the store.
                # Nothing waits on it: it rides on the next frame to n.
                for n in st.targets:
                    if n != t.name:
                        t.send_later(n, Unsubscribe(key, sub))
            if not st.subs:
                del t.results[key]
                t.orphaned.pop(key, None)
        task = t.tasks.get(key)
        if task is not None:
            task.subs.discard(sub)
            if not task.subs and task.state != RUNNING:
                if task.state != KEPT:
                    t.metrics.inc("exec_tasks_cancelled")
                self.running.drop_task(key)
