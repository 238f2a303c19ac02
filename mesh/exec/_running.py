"""Running tasks: queueing, executor outcomes, storing and confirming results.

A component of :class:`mesh.exec._core.ExecCore` (see that module for the
protocol) over the shared :class:`~mesh.exec._table.Table`. Sans-IO.
"""

from __future__ import annotations

from mesh.exec._executor import Job, Outcome
from mesh.exec._lineage import Lineage
from mesh.exec._locality import Locality, input_bytes
from mesh.exec._records import (
    READY,
    RUNNING,
    SPEC_AKIND,
    SPEC_ARGS,
    SPEC_DEPS,
    SPEC_FN,
    SPEC_RETRIES,
    SPEC_WORKERS,
    STOLEN,
    WAITING,
    Stored,
    Task,
    move,
)
from mesh.exec._table import Subscriptions, Table
from mesh.protocol import payload as P
from mesh.protocol.messages import Confirm, Grant, Steal, Store


def killed_message(key: str, crashes: int, node: str) -> str:
    return (
        f"KilledWorker: task {key!r} was running when its worker process died, "
        f"{crashes} times (the last time on node {node!r}); mesh will not run it again. "
        "The task most likely crashed the process itself: os._exit(), a segfault in a C "
        "extension, or running out of memory. Run the function locally with the same "
        "arguments to find out, or check the node's log and memory limits."
    )


class Running:
    """Task execution and result replication on one node."""

    def __init__(self, table: Table, subs: Subscriptions) -> None:
        self.t = table
        self.subs = subs
        self.lineage = Lineage(table, self.release_deps)
        self.locality = Locality(table, self)

    # ------------------------------------------------------------- execution
    def activate(self, task: Task) -> None:
        """This node owns ``task`` now: queue it, or wait for its dependencies
        (large ones are located first, :mod:`mesh.exec._locality`)."""
        move(task, "own")
        self.await_deps(task, task.spec[SPEC_DEPS], count=True, locate=True)

    def await_deps(self, task: Task, deps: list[str], *, count: bool, locate: bool) -> None:
        """Take the values of ``deps`` this node holds, ask for the others
        (``count``: this task starts to hold them), queue ``task`` if none is
        missing."""
        t = self.t
        for dep in deps:
            if count:  # balanced by release_deps when the task is done here
                t.interest[dep] = t.interest.get(dep, 0) + 1
            if dep in task.depvals:
                continue
            st = t.results.get(dep)
            if st is not None and st.confirmed:
                if self.take_dependency(task, dep, st.kind, st.payload):
                    return
                continue
            task.missing.add(dep)
            waiting = t.waiters.get(dep)
            fetch = not locate and dep in t.locating
            if waiting is None:
                t.waiters[dep] = [task.key]
            elif task.key not in waiting:
                waiting.append(task.key)
            if fetch:
                t.locating.discard(dep)
            if dep not in t.pending or fetch:
                t.pending[dep] = None
                if waiting is None and locate and self.locality.locates(dep):
                    t.locating.add(dep)
                self.subs.request(dep, None)
        if not task.missing:
            self.inputs_known(task)

    def inputs_known(self, task: Task) -> None:
        """No input of ``task`` is missing: run it here, or where its located
        inputs are (:mod:`mesh.exec._locality`), or on a node it is restricted to."""
        if task.where or task.spec[SPEC_WORKERS]:
            self.locality.decide(task)
        else:
            self.queue(task, "deps_ready")

    def reclaim(self, task: Task) -> None:
        """Run a task an idle or nearer node took back here (it died or
        stayed silent); inputs it was given elsewhere are fetched first. A
        task restricted to named nodes goes to one of them again."""
        named = task.spec[SPEC_WORKERS]
        if all(d in task.depvals for d in task.spec[SPEC_DEPS]) and (
                not named or self.t.name in named):
            self.queue(task, "reclaim")
        else:
            move(task, "regain")
            self.await_deps(task, task.spec[SPEC_DEPS], count=False, locate=False)

    def take_dependency(self, task: Task, dep: str, kind: int, payload: bytes) -> bool:
        """Record the value of ``dep`` for ``task``; a failed dependency fails
        the task with the same error (returns True then)."""
        task.depvals[dep] = [kind, payload]
        if P.is_failure(kind):
            self.complete(task, kind, payload)
            return True
        return False

    def dependency_arrived(self, dep: str, kind: int, payload: bytes) -> None:
        """A confirmed result of ``dep`` reached this node: wake its waiters
        (and tell the other layers' listeners)."""
        for listener in self.t.listeners:
            listener(dep, kind, payload)
        waiting = self.t.waiters.pop(dep, None)
        if not waiting:
            return
        tasks = self.t.tasks
        for tkey in waiting:
            task = tasks.get(tkey)
            if task is None or task.state != WAITING or dep not in task.missing:
                continue
            task.missing.discard(dep)
            if not self.take_dependency(task, dep, kind, payload) and not task.missing:
                self.inputs_known(task)

    def queue(self, task: Task, event: str) -> None:
        move(task, event)
        self.t.ready.append(task.key)

    def take_jobs(self, n: int) -> tuple[list[Job], list[Job]]:
        """Up to ``n`` queued tasks as executor jobs: ``(batchable, solo)``;
        tasks that crashed a worker before are solo."""
        jobs: list[Job] = []
        solo: list[Job] = []
        ready = self.t.ready
        tasks = self.t.tasks
        while ready and len(jobs) + len(solo) < n:
            key = ready.popleft()
            task = tasks.get(key)
            if task is None or task.state != READY:
                continue
            move(task, "start")
            spec = task.spec
            job = [key, spec[SPEC_FN], spec[SPEC_AKIND], spec[SPEC_ARGS], task.depvals or None]
            (solo if task.crashes else jobs).append(job)
        return jobs, solo

    def next_function(self) -> bytes | None:
        """The pickled function of the next queued task (None if none)."""
        ready, tasks = self.t.ready, self.t.tasks
        while ready:
            task = tasks.get(ready[0])
            if task is not None and task.state == READY:
                return task.spec[SPEC_FN]
            ready.popleft()  # a stale entry: dropped, handed over or running
        return None

    # -------------------------------------------------------------- stealing
    def steal_from(self, victim: str, n: int) -> None:
        """This node is idle: ask ``victim`` for up to ``n`` queued tasks."""
        self.t.send(victim, Steal(n, self.t.name))

    def on_steal(self, msg: Steal) -> None:
        """Give up to ``n`` of our queued tasks (the newest) to an idle node."""
        t = self.t
        n, thief = msg.n, msg.thief
        if thief == t.name or thief not in t.ring.names:
            return
        ready = t.ready
        limit = min(n, len(ready) // 2 + 1)
        scanned: list[str] = []
        cands: list[tuple[int, int, str]] = []
        while ready and len(scanned) < 4 * limit:  # the newest, smallest inputs first
            key = ready.pop()
            task = t.tasks.get(key)
            if task is None or task.state != READY:
                continue
            scanned.append(key)
            named = task.spec[SPEC_WORKERS]  # a restricted task goes to a named node only
            if not task.crashes and (not named or thief in named):  # a crash suspect stays
                cands.append((input_bytes(task), len(scanned), key))
        chosen = {key for _, _, key in sorted(cands)[:limit]}
        for _, _, key in sorted(cands)[:limit]:
            task = t.tasks[key]
            move(task, "give")
            task.thief = thief
            task.stale = 0
            t.send(thief, Grant(key, task.spec, sorted(task.subs), task.depvals,
                                self.locality.located_subs(key)))
        ready.extend(reversed([k for k in scanned if k not in chosen]))
        if chosen:
            t.metrics.inc("exec_tasks_given", len(chosen))

    def on_given(self, msg: Grant) -> None:
        """Run a task an overloaded owner gave us; we coordinate its result."""
        t = self.t
        key, spec, subs, depvals = msg.key, msg.spec, msg.subs, msg.depvals
        if key in t.results:
            return
        self.locality.note_located(key, msg.located)
        task = t.tasks.get(key)
        subs = t.subscribers(subs)
        if task is None:
            task = Task(key, spec, subs)
            t.tasks[key] = task
            t.orphan_if_unsubscribed(key, subs)
        else:
            task.subs.update(subs)
            if task.state in (READY, RUNNING):
                return
        whole = all(d in depvals for d in spec[SPEC_DEPS])
        if task.state == WAITING and not whole:
            return  # it waits for its inputs here already
        task.depvals = dict(depvals)
        task.missing.clear()
        task.thief = t.name
        t.metrics.inc("exec_tasks_taken")
        if whole:
            for dep in spec[SPEC_DEPS]:  # balanced by release_deps when it is done
                t.interest[dep] = t.interest.get(dep, 0) + 1
            self.queue(task, "take")
        else:  # given for locality: its large inputs are here, or fetched from here
            move(task, "lend")
            self.await_deps(task, spec[SPEC_DEPS], count=True, locate=False)

    # -------------------------------------------------------------- outcomes
    def outcomes(self, outs: list[Outcome]) -> None:
        """Results from the executor."""
        t = self.t
        tasks = t.tasks
        for tid, kind, payload in outs:
            task = tasks.get(tid)
            if task is None or task.state != RUNNING:
                t.metrics.inc("exec_outcomes_ignored")
                continue
            if not task.subs and tid not in t.orphaned:
                self.drop_task(tid)  # released or stored by another owner meanwhile
                continue
            if kind == P.CRASHED:
                self.crashed(task)
            elif self.should_retry(task, kind):
                task.tries += 1
                t.metrics.inc("exec_task_retries")
                self.queue(task, "retry")
            else:
                self.complete(task, kind, payload)

    def crashed(self, task: Task) -> None:
        """``task`` killed its worker: run it again, or give up after
        ``max_crashes`` with :class:`~mesh.exec.KilledWorker`."""
        task.crashes += 1
        self.t.metrics.inc("exec_worker_crashes")
        if task.crashes >= self.t.max_crashes:
            msg = killed_message(task.key, task.crashes, self.t.name)
            self.complete(task, P.KILLED, msg.encode())
        else:
            self.queue(task, "retry")

    def should_retry(self, task: Task, kind: int) -> bool:
        """Whether a task that finished with ``kind`` runs again (it raised and
        has retries left); its failed result is then never stored."""
        return kind == P.ERROR and task.tries < task.spec[SPEC_RETRIES]

    def complete(self, task: Task, kind: int, payload: bytes) -> None:
        """Store the result of a task this node owned and start replication."""
        t = self.t
        key = task.key
        t.completed += 1
        r = t.replicas_of(task.spec)
        subs = task.subs
        if self.lineage.stored(task):
            subs = set(subs)  # the kept spec and the result have subscribers each
        else:
            self.drop_task(key)
        targets = t.ring.pref(key, r)
        me = t.name
        st = Stored(kind, payload, subs, list(targets), me, replicas=r)
        st.acks.add(me)
        t.results[key] = st
        # A subscriber that is itself a target resolves from our store message
        # when the targets are just it and us; the others get a result message.
        tset = set(targets)
        st.notified = {s for s in subs if s in tset and tset <= {me, s}}
        names = sorted(subs)
        for n in targets:
            if n != me:
                t.send(n, Store(key, kind, payload, list(targets), names, me, False, r))
        self.lineage.keepers(key, st, task.spec)
        self.check_confirmed(key, st)

    def check_confirmed(self, key: str, st: Stored) -> None:
        """Confirm a result once every alive target acknowledged holding it
        (and every alive keeper its spec, :mod:`mesh.exec._lineage`)."""
        alive = self.t.ring.names
        for target in st.targets:
            if target not in st.acks and target in alive:
                return
        for keeper in st.keepers:
            if keeper not in st.acks and keeper in alive:
                return
        st.confirmed = True
        st.spec = None
        self.on_confirmed(key, st)

    def on_confirmed(self, key: str, st: Stored) -> None:
        t = self.t
        me = t.name
        for sub in sorted(st.subs):
            if sub == me:
                self.subs.arrived(key, st.kind, st.payload)
            elif sub not in st.notified:
                t.send(sub, self.locality.result_for(key, st.kind, st.payload, sub))
        if len(st.targets) > 2:
            for n in st.targets:
                if n != me:
                    t.send(n, Confirm(key))
        if me not in st.targets:
            del t.results[key]

    def drop_task(self, key: str) -> None:
        task = self.t.tasks.pop(key, None)
        if task is None:
            return
        self.t.orphaned.pop(key, None)
        if task.state in (WAITING, READY, RUNNING, STOLEN):
            self.release_deps(task)

    def release_deps(self, task: Task) -> None:
        """``task`` no longer runs here: stop holding its dependencies."""
        t = self.t
        key = task.key
        for dep in task.spec[SPEC_DEPS]:
            waiting = t.waiters.get(dep)
            if waiting is not None and key in waiting:
                waiting.remove(key)
                if not waiting:
                    del t.waiters[dep]
            n = t.interest.get(dep, 0) - 1
            if n > 0:
                t.interest[dep] = n
            else:
                t.interest.pop(dep, None)
                self.subs.maybe_release(dep)
