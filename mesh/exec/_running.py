"""Running tasks in the exec core: queueing, executor outcomes, storing and
confirming results.

Part of :class:`mesh.exec._core.ExecCore` (a mixin; see that module for the
protocol). Sans-IO like the rest of the core.
"""

from __future__ import annotations

from mesh.exec import _payload as P
from mesh.exec._effects import Effect
from mesh.exec._executor import Job, Outcome
from mesh.exec._records import (
    READY,
    RUNNING,
    SPEC_AKIND,
    SPEC_ARGS,
    SPEC_DEPS,
    SPEC_FN,
    SPEC_RETRIES,
    STOLEN,
    WAITING,
    Stored,
    Task,
)
from mesh.protocol.messages import Confirm, Grant, Result, Steal, Store

FAILED_KINDS = (P.ERROR, P.KILLED, P.FAILED)


def killed_message(key: str, crashes: int, node: str) -> str:
    return (
        f"KilledWorker: task {key!r} was running when its worker process died, "
        f"{crashes} times (the last time on node {node!r}); mesh will not run it again. "
        "The task most likely crashed the process itself: os._exit(), a segfault in a C "
        "extension, or running out of memory. Run the function locally with the same "
        "arguments to find out, or check the node's log and memory limits."
    )


class Running:
    """Task execution and result replication of :class:`ExecCore`."""

    # ------------------------------------------------------------- execution
    def _activate(self, task: Task) -> None:
        """This node owns ``task`` now: queue it, or wait for its dependencies."""
        task.state = WAITING
        for dep in task.spec[SPEC_DEPS]:
            if dep in task.depvals:
                continue
            self.interest[dep] = self.interest.get(dep, 0) + 1
            st = self.results.get(dep)
            if st is not None and st.confirmed:
                task.depvals[dep] = [st.kind, st.payload]
                if st.kind in FAILED_KINDS:
                    self._complete(task, st.kind, st.payload)
                    return
                continue
            task.missing.add(dep)
            waiting = self.waiters.get(dep)
            if waiting is None:
                self.waiters[dep] = [task.key]
                if dep not in self.pending:
                    self.pending[dep] = None
                    self._request(dep, None)
            else:
                waiting.append(task.key)
        if not task.missing:
            self._queue(task)

    def _queue(self, task: Task) -> None:
        task.state = READY
        self.ready.append(task.key)

    def take_jobs(self, n: int) -> tuple[list[Job], list[Job]]:
        """Up to ``n`` queued tasks as executor jobs: ``(batchable, solo)``;
        tasks that crashed a worker before are solo."""
        jobs: list[Job] = []
        solo: list[Job] = []
        ready = self.ready
        tasks = self.tasks
        while ready and len(jobs) + len(solo) < n:
            key = ready.popleft()
            task = tasks.get(key)
            if task is None or task.state != READY:
                continue
            task.state = RUNNING
            spec = task.spec
            job = [key, spec[SPEC_FN], spec[SPEC_AKIND], spec[SPEC_ARGS], task.depvals or None]
            (solo if task.crashes else jobs).append(job)
        return jobs, solo

    def next_function(self) -> bytes | None:
        """The pickled function of the next queued task (None if none)."""
        ready, tasks = self.ready, self.tasks
        while ready:
            task = tasks.get(ready[0])
            if task is not None and task.state == READY:
                return task.spec[SPEC_FN]
            ready.popleft()  # a stale entry: dropped, handed over or running
        return None

    def steal_from(self, victim: str, n: int) -> list[Effect]:
        """This node is idle: ask ``victim`` for up to ``n`` queued tasks."""
        self._send(victim, Steal(n, self.name))
        return self._effects()

    def _on_steal(self, msg: Steal) -> None:
        """Give up to ``n`` of our queued tasks (the newest) to an idle node."""
        n, thief = msg.n, msg.thief
        if thief == self.name or thief not in self.ring.names:
            return
        keep = []
        given = 0
        ready = self.ready
        while ready and given < min(n, len(ready) // 2 + 1):
            key = ready.pop()
            task = self.tasks.get(key)
            if task is None or task.state != READY:
                continue
            if task.crashes:  # a crash suspect stays under our eye
                keep.append(key)
                continue
            task.state = STOLEN
            task.thief = thief
            task.stale = 0
            given += 1
            self._send(thief, Grant(key, task.spec, sorted(task.subs), task.depvals))
        ready.extend(reversed(keep))
        if given:
            self.metrics.inc("exec_tasks_given", given)

    def _on_given(self, msg: Grant) -> None:
        """Run a task an overloaded owner gave us; we coordinate its result."""
        key, spec, subs, depvals = msg.key, msg.spec, msg.subs, msg.depvals
        if key in self.results:
            return
        task = self.tasks.get(key)
        if task is None:
            task = Task(key, spec, set(subs))
            self.tasks[key] = task
        else:
            task.subs.update(subs)
            if task.state in (READY, RUNNING):
                return
        for dep in spec[SPEC_DEPS]:  # balanced by _release_deps when it is done
            self.interest[dep] = self.interest.get(dep, 0) + 1
        task.depvals = dict(depvals)
        task.missing.clear()
        task.thief = self.name
        self.metrics.inc("exec_tasks_taken")
        self._queue(task)

    def outcomes(self, outs: list[Outcome]) -> list[Effect]:
        """Results from the executor."""
        tasks = self.tasks
        for tid, kind, payload in outs:
            task = tasks.get(tid)
            if task is None or task.state != RUNNING:
                self.metrics.inc("exec_outcomes_ignored")
                continue
            if not task.subs and tid not in self.orphaned:
                self._drop_task(tid)  # released or stored by another owner meanwhile
                continue
            if kind == P.CRASHED:
                task.crashes += 1
                self.metrics.inc("exec_worker_crashes")
                if task.crashes >= self.max_crashes:
                    msg = killed_message(tid, task.crashes, self.name)
                    self._complete(task, P.KILLED, msg.encode())
                else:
                    self._queue(task)
                continue
            if kind == P.ERROR and task.tries < (task.spec[SPEC_RETRIES] or 0):
                task.tries += 1
                self.metrics.inc("exec_task_retries")
                self._queue(task)
                continue
            self._complete(task, kind, payload)
        return self._effects()

    def _complete(self, task: Task, kind: int, payload: bytes) -> None:
        """Store the result of a task this node owned and start replication."""
        key = task.key
        self.completed += 1
        self._drop_task(key)
        targets = self.ring.pref(key)
        me = self.name
        st = Stored(kind, payload, task.subs, list(targets), me)
        st.acks.add(me)
        self.results[key] = st
        # A subscriber that is itself a target resolves from our store message
        # when the targets are just it and us; the others get a result message.
        tset = set(targets)
        st.notified = {s for s in task.subs if tset <= {me, s}}
        subs = sorted(task.subs)
        for n in targets:
            if n != me:
                self._send(n, Store(key, kind, payload, list(targets), subs, me, False))
        self._check_confirmed(key, st)

    def _check_confirmed(self, key: str, st: Stored) -> None:
        alive = self.ring.names
        for t in st.targets:
            if t not in st.acks and t in alive:
                return
        st.confirmed = True
        self._on_confirmed(key, st)

    def _on_confirmed(self, key: str, st: Stored) -> None:
        me = self.name
        for sub in sorted(st.subs):
            if sub == me:
                self._deliver(key, st.kind, st.payload)
            elif sub not in st.notified:
                self._send(sub, Result(key, st.kind, st.payload))
        if len(st.targets) > 2:
            for n in st.targets:
                if n != me:
                    self._send(n, Confirm(key))
        if me not in st.targets:
            del self.results[key]

    def _drop_task(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is None:
            return
        self.orphaned.pop(key, None)
        if task.state in (WAITING, READY, RUNNING, STOLEN):
            self._release_deps(task)

    def _release_deps(self, task: Task) -> None:
        """``task`` no longer runs here: stop holding its dependencies."""
        key = task.key
        for dep in task.spec[SPEC_DEPS]:
            waiting = self.waiters.get(dep)
            if waiting is not None and key in waiting:
                waiting.remove(key)
                if not waiting:
                    del self.waiters[dep]
            n = self.interest.get(dep, 0) - 1
            if n > 0:
                self.interest[dep] = n
            else:
                self.interest.pop(dep, None)
                self._maybe_release(dep)
