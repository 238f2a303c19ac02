"""The exec layer of one node as a sans-IO state machine.

Events go in (client messages, peer messages, executor outcomes, view
changes, ticks); messages come out in :attr:`ExecCore.to_peers` and
:attr:`ExecCore.to_clients`, and jobs are pulled with :meth:`take_jobs`. No
asyncio, no clock, no randomness: the same inputs give the same outputs.

Protocol, per task key (``pref`` = the key's preference list over alive
members, owner first, ``min(replicas, alive)`` long):

* The entry node of a client sends the spec to every node of ``pref``
  (``t``). The owner queues it; the others keep it as a backup. Each remembers
  the subscribers (nodes to notify).
* The owner runs it and becomes the result's coordinator: it stores the result
  and sends it to the other nodes of ``pref`` (``s``); they acknowledge
  (``a``). Once every alive target holds it, the result is *confirmed* and
  the coordinator notifies the subscribers (``r``); a subscriber that is
  itself a target of a two-node list resolves straight from ``s``.
* A view change moves keys: the first surviving holder of the old list sends
  specs and results to the new holders; the first node of the new list owns
  the task from then on. Subscribers re-send what they wait for, so a task
  whose every holder died is submitted again from the entry node's copy.
* Dependencies: the owner of a task whose arguments are futures asks the
  dependencies' holders (``w``) and queues the task once all values arrived.
  A failed dependency fails the task with the same error.
* Release (``x``): when no client and no local task holds a key any more, the
  node unsubscribes; a result or queued task nobody subscribes to is dropped.

Every message is a list whose first item names it (see ``_PEER_HANDLERS``).
"""

from __future__ import annotations

from collections import deque

from mesh.exec import _payload as P
from mesh.exec._executor import Job, Outcome
from mesh.exec._records import (
    HELD,
    READY,
    RUNNING,
    SPEC_AKIND,
    SPEC_ARGS,
    SPEC_DEPS,
    SPEC_FN,
    SPEC_RETRIES,
    WAITING,
    Session,
    Stored,
    Task,
)
from mesh.exec._ring import Ring
from mesh.metrics import Metrics
from mesh.placement import DEFAULT_PROBES, DEFAULT_VNODES

__all__ = ["ORPHAN_GRACE", "ExecCore", "ProtocolViolation"]

ORPHAN_GRACE = 60.0
"""Seconds a result or task whose every subscriber died is kept, so that a
client whose entry node died can re-attach through another node."""

_FAILED_KINDS = (P.ERROR, P.KILLED, P.FAILED)


class ProtocolViolation(Exception):
    """A client or peer sent a message that breaks the protocol (unknown
    operation, wrong shape, more tasks than its credit). The channel that
    carried it is closed."""


def killed_message(key: str, crashes: int, node: str) -> str:
    return (
        f"KilledWorker: task {key!r} was running when its worker process died, "
        f"{crashes} times (the last time on node {node!r}); mesh will not run it again. "
        "The task most likely crashed the process itself: os._exit(), a segfault in a C "
        "extension, or running out of memory. Run the function locally with the same "
        "arguments to find out, or check the node's log and memory limits."
    )


class ExecCore:
    """Task ownership, replication and delivery for one node."""

    def __init__(self, name: str, *, replicas: int, max_crashes: int, metrics: Metrics,
                 window: int = 4096, vnodes: int = DEFAULT_VNODES,
                 probes: int = DEFAULT_PROBES) -> None:
        self.name = name
        self.replicas = replicas
        self.max_crashes = max_crashes
        self.metrics = metrics
        self.window = window
        self._ring_opts = {"vnodes": vnodes, "probes": probes}
        self.ring = Ring([(name, 1)], replicas, **self._ring_opts)
        self.tasks: dict[str, Task] = {}
        self.results: dict[str, Stored] = {}
        self.ready: deque[str] = deque()
        self.orphan_wants: dict[str, set[str]] = {}
        self.orphaned: dict[str, float] = {}
        # This node as a subscriber:
        self.sessions: dict[int, Session] = {}
        self.watch: dict[str, set[int]] = {}
        """Sessions waiting for a key's result."""
        self.held: dict[str, set[int]] = {}
        """Sessions holding a key (until they release it)."""
        self.waiters: dict[str, list[str]] = {}
        """Local tasks waiting for a dependency."""
        self.interest: dict[str, int] = {}
        """How many local tasks use a dependency."""
        self.specs: dict[str, list] = {}
        """Specs of the keys clients attached here hold, to run them again if
        every copy of their result is lost while a dependent still needs it."""
        self.pending: dict[str, list | None] = {}
        """Keys this node waits for, with the spec when a client gave it (so it
        can submit again if every holder dies)."""
        # Outputs
        self.to_peers: dict[str, list] = {}
        self.to_clients: dict[int, list] = {}
        self._local: deque[list] = deque()
        self.now = 0.0
        self.completed = 0
        self._stale: set[str] = set()
        self._base: Ring | None = None
        """The ring in force when the current rebalancing pass began."""
        self._todo_tasks: list[str] = []
        self._todo_results: list[str] = []
        self._ti = 0
        self._ri = 0

    # ----------------------------------------------------------------- output
    def _send(self, dest: str, msg: list) -> None:
        if dest == self.name:
            self._local.append(msg)
        else:
            out = self.to_peers.get(dest)
            if out is None:
                self.to_peers[dest] = [msg]
            else:
                out.append(msg)

    def _to_client(self, sid: int, msg: list) -> None:
        out = self.to_clients.get(sid)
        if out is None:
            self.to_clients[sid] = [msg]
        else:
            out.append(msg)

    def _flush_local(self) -> None:
        local = self._local
        while local:
            self._on_peer(self.name, local.popleft())

    # ------------------------------------------------------------------- view
    def set_view(self, members: list[tuple[str, int]], now: float) -> None:
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
        self._flush_local()

    def rebalancing(self) -> bool:
        """Whether a rebalancing pass is in progress."""
        return self._base is not None

    def rebalance_step(self, budget: int) -> bool:
        """Examine up to ``budget`` held keys after a view change; returns True
        while keys remain. A pass over tens of thousands of stored results
        takes a second of CPU, so the driver runs it in slices and lets the
        event loop (and gossip) breathe in between."""
        base, new = self._base, self.ring
        if base is None:
            return False
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
        self._flush_local()
        if self._ti < len(self._todo_tasks) or self._ri < len(self._todo_results):
            return True
        self._base = None
        self._todo_tasks, self._todo_results = [], []
        return False

    def _rebalance_task(self, key: str, task: Task, base: Ring, new: Ring,
                        alive: frozenset[str], dead: frozenset[str]) -> None:
        if dead and task.subs & dead:
            task.subs -= dead
            if not task.subs:
                self.orphaned.setdefault(key, self.now)
        oldp, newp = base.compare(new, key)
        if oldp == newp:
            return
        handler = next((n for n in oldp if n in alive), self.name)
        if handler == self.name:
            for n in newp:
                if n not in oldp:
                    self._send(n, ["t", key, task.spec, sorted(task.subs), list(newp)])
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
                        self._send(n, ["s", key, st.kind, st.payload, list(newp),
                                       sorted(st.subs), self.name, True])
            if self.name not in newp and (st.coord != self.name or st.confirmed):
                del self.results[key]
                return
        if not st.confirmed and st.coord == self.name:
            self._check_confirmed(key, st)
        elif not st.confirmed and newp and newp[0] == self.name:
            st.confirmed = True  # its coordinator died: we hold a copy, so do others
            self._on_confirmed(key, st)

    def tick(self, now: float) -> None:
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
                        self._send(sub, ["n", key])
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
                            self._send(n, ["s", key, st.kind, st.payload, st.targets, subs,
                                           self.name, False])
                st.stale = True
        self._flush_local()
        for key in [k for k, t in self.orphaned.items() if now - t >= ORPHAN_GRACE]:
            del self.orphaned[key]
            st = self.results.get(key)
            if st is not None and not st.subs:
                del self.results[key]
            task = self.tasks.get(key)
            if task is not None and not task.subs and task.state != RUNNING:
                self._drop_task(key)

    # --------------------------------------------------------------- sessions
    def open_session(self, sid: int) -> Session:
        sess = Session(sid, self.window)
        self.sessions[sid] = sess
        return sess

    def close_session(self, sid: int) -> None:
        """The client went away: release everything it held."""
        sess = self.sessions.pop(sid, None)
        self.to_clients.pop(sid, None)
        if sess is None:
            return
        for key in sorted(sess.keys):
            self._session_release(sid, key)
        self._flush_local()

    def client_messages(self, sid: int, msgs: list) -> None:
        """Messages from a client session. Raises :class:`ProtocolViolation`."""
        sess = self.sessions.get(sid)
        if sess is None:
            return
        try:
            for msg in msgs:
                op = msg[0]
                if op == "s":
                    _, key, fn, akind, args, deps, retries = msg
                    if not isinstance(key, str) or not isinstance(deps, list):
                        raise ProtocolViolation("malformed submit")
                    if sess.inflight >= sess.window:
                        raise ProtocolViolation(
                            f"client submitted beyond its credit of {sess.window} tasks")
                    self._client_submit(sess, key, [fn, akind, args, deps, retries])
                elif op == "x":
                    if msg[1] in sess.keys:
                        sess.keys.discard(msg[1])
                        self._session_release(sid, msg[1])
                else:
                    raise ProtocolViolation(f"unknown client operation {op!r}")
        except (ValueError, TypeError, IndexError) as exc:
            raise ProtocolViolation(f"malformed client message: {exc}") from None
        finally:
            self._flush_local()

    def _client_submit(self, sess: Session, key: str, spec: list) -> None:
        if key in sess.keys:
            return  # a client submits each key once per session
        sess.keys.add(key)
        self.specs[key] = spec
        sess.inflight += 1
        held = self.held.get(key)
        if held is None:
            self.held[key] = {sess.sid}
        else:
            held.add(sess.sid)
        st = self.results.get(key)
        if st is not None and st.confirmed:
            self._to_client(sess.sid, ["d", key, st.kind, st.payload])
            sess.inflight -= 1
            return
        watchers = self.watch.get(key)
        if watchers is None:
            self.watch[key] = {sess.sid}
        else:
            watchers.add(sess.sid)
        if key not in self.pending or self.pending[key] is None:
            self.pending[key] = spec
            self._request(key, spec)

    def _session_release(self, sid: int, key: str) -> None:
        held = self.held.get(key)
        if held is not None:
            held.discard(sid)
            if not held:
                del self.held[key]
                self.specs.pop(key, None)
        watchers = self.watch.get(key)
        if watchers is not None and sid in watchers:
            watchers.discard(sid)
            sess = self.sessions.get(sid)
            if sess is not None:
                sess.inflight -= 1
            if not watchers:
                del self.watch[key]
        self._maybe_release(key)

    def _maybe_release(self, key: str) -> None:
        if key in self.held or self.interest.get(key) or key in self.watch or key in self.waiters:
            return
        self.pending.pop(key, None)
        for n in self.ring.pref(key):
            self._send(n, ["x", key, self.name])

    def _request(self, key: str, spec: list | None) -> None:
        """Ask the key's holders for its result (submitting ``spec`` if known)."""
        pref = self.ring.pref(key)
        for n in pref:
            if spec is not None:
                self._send(n, ["t", key, spec, [self.name], list(pref)])
            else:
                self._send(n, ["w", key, self.name])

    # ---------------------------------------------------------------- delivery
    def _deliver(self, key: str, kind: int, payload: bytes) -> None:
        """A confirmed result reached this node as a subscriber."""
        self.pending.pop(key, None)
        watchers = self.watch.pop(key, None)
        if watchers:
            msg = ["d", key, kind, payload]
            for sid in sorted(watchers):
                self._to_client(sid, msg)
                sess = self.sessions.get(sid)
                if sess is not None:
                    sess.inflight -= 1
        waiting = self.waiters.pop(key, None)
        if waiting:
            for tkey in waiting:
                task = self.tasks.get(tkey)
                if task is None or task.state != WAITING or key not in task.missing:
                    continue
                task.missing.discard(key)
                task.depvals[key] = [kind, payload]
                if kind in _FAILED_KINDS:
                    self._complete(task, kind, payload)
                elif not task.missing:
                    self._queue(task)

    # ------------------------------------------------------------------ peers
    def peer_messages(self, src: str, msgs: list) -> None:
        """Messages from another node. Raises :class:`ProtocolViolation`."""
        try:
            for msg in msgs:
                self._on_peer(src, msg)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            raise ProtocolViolation(f"malformed peer message: {exc!r}") from None
        finally:
            self._flush_local()

    def _on_peer(self, src: str, msg: list) -> None:
        handler = _PEER_HANDLERS.get(msg[0])
        if handler is None:
            raise ProtocolViolation(f"unknown peer operation {msg[0]!r}")
        handler(self, msg)

    def _on_task(self, msg: list) -> None:
        _, key, spec, subs, sent_to = msg
        if len(spec) != 5 or not isinstance(spec[SPEC_DEPS], list):
            raise ProtocolViolation("malformed task spec")
        st = self.results.get(key)
        if st is not None:
            self._on_want_result(key, st, subs)
            return
        task = self.tasks.get(key)
        if task is not None:
            task.subs.update(subs)
            self.orphaned.pop(key, None)
            return
        subs = set(subs)
        extra = self.orphan_wants.pop(key, None)
        if extra:
            subs |= extra
        task = Task(key, spec, subs)
        self.tasks[key] = task
        pref = self.ring.pref(key)
        missed = [n for n in pref if n not in sent_to and n != self.name]
        if missed:  # our views differ: make sure the holders we see get it too
            fwd = ["t", key, spec, sorted(subs), sorted({*sent_to, *pref})]
            for n in missed:
                self._send(n, fwd)
        if pref and pref[0] == self.name:
            self._activate(task)

    def _on_want(self, msg: list) -> None:
        _, key, sub = msg
        st = self.results.get(key)
        if st is not None:
            self._on_want_result(key, st, [sub])
            return
        task = self.tasks.get(key)
        if task is not None:
            task.subs.add(sub)
            self.orphaned.pop(key, None)
            return
        self.orphan_wants.setdefault(key, set()).add(sub)

    def _on_want_result(self, key: str, st: Stored, subs: list[str]) -> None:
        self.orphaned.pop(key, None)
        for sub in subs:
            st.subs.add(sub)
            if st.confirmed or st.coord != self.name:
                if sub == self.name:
                    self._deliver(key, st.kind, st.payload)
                else:
                    self._send(sub, ["r", key, st.kind, st.payload])

    def _on_store(self, msg: list) -> None:
        _, key, kind, payload, targets, subs, coord, confirmed = msg
        task = self.tasks.get(key)
        extra = set(self.orphan_wants.pop(key, ()))
        if task is not None:
            extra |= task.subs
            if task.state != RUNNING:
                self._drop_task(key)
            else:
                task.subs.clear()  # the outcome of our own run is no longer needed
        wanted = extra - set(subs) - {self.name}
        st = self.results.get(key)
        if st is None:
            st = Stored(kind, payload, set(subs) | extra, list(targets), coord)
            st.confirmed = confirmed or set(targets) <= {coord, self.name}
            self.results[key] = st
            pref = self.ring.pref(key)
            missed = [n for n in pref if n not in targets and n != self.name]
            if missed:  # our views differ: make sure the holders we see get it too
                fwd = ["s", key, kind, payload, sorted({*targets, *pref}), sorted(st.subs),
                       self.name, st.confirmed]
                for n in missed:
                    self._send(n, fwd)
        else:
            st.subs.update(subs)
            st.subs |= extra
            if confirmed:
                st.confirmed = True
        if coord != self.name:
            self._send(coord, ["a", key, self.name])
        if st.confirmed and (key in self.watch or key in self.waiters or key in self.pending):
            self._deliver(key, kind, payload)
        for sub in sorted(wanted):  # subscribers the coordinator did not know about
            self._send(sub, ["r", key, kind, payload])

    def _on_ack(self, msg: list) -> None:
        _, key, holder = msg
        st = self.results.get(key)
        if st is None or st.confirmed:
            return
        st.acks.add(holder)
        self._check_confirmed(key, st)

    def _on_result(self, msg: list) -> None:
        _, key, kind, payload = msg
        st = self.results.get(key)
        if st is not None and not st.confirmed:
            st.confirmed = True
        if key in self.watch or key in self.waiters or key in self.pending:
            self._deliver(key, kind, payload)

    def _on_confirm(self, msg: list) -> None:
        key = msg[1]
        st = self.results.get(key)
        if st is not None and not st.confirmed:
            st.confirmed = True
            if key in self.watch or key in self.waiters or key in self.pending:
                self._deliver(key, st.kind, st.payload)

    def _on_need(self, msg: list) -> None:
        key = msg[1]
        spec = self.specs.get(key)
        if spec is not None:
            self.metrics.inc("exec_lost_keys_resubmitted")
            self._request(key, spec)

    def _on_release(self, msg: list) -> None:
        _, key, sub = msg
        wants = self.orphan_wants.get(key)
        if wants is not None:
            wants.discard(sub)
            if not wants:
                del self.orphan_wants[key]
        st = self.results.get(key)
        if st is not None:
            st.subs.discard(sub)
            if not st.subs:
                del self.results[key]
                self.orphaned.pop(key, None)
        task = self.tasks.get(key)
        if task is not None:
            task.subs.discard(sub)
            if not task.subs and task.state != RUNNING:
                self._drop_task(key)
                self.metrics.inc("exec_tasks_cancelled")

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
                if st.kind in _FAILED_KINDS:
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

    def outcomes(self, outs: list[Outcome]) -> None:
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
        self._flush_local()

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
        if len(targets) <= 2:
            st.notified = {s for s in task.subs if s in targets}
        subs = sorted(task.subs)
        for n in targets:
            if n != me:
                self._send(n, ["s", key, kind, payload, list(targets), subs, me, False])
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
                self._send(sub, ["r", key, st.kind, st.payload])
        if len(st.targets) > 2:
            for n in st.targets:
                if n != me:
                    self._send(n, ["k", key])
        if me not in st.targets:
            del self.results[key]

    def _drop_task(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is None:
            return
        self.orphaned.pop(key, None)
        if task.state in (WAITING, READY, RUNNING):
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

    # ----------------------------------------------------------------- status
    def queue_depth(self) -> int:
        return len(self.ready)

    def describe(self, key: str) -> dict[str, object]:
        """Where ``key`` stands on this node (for operators and tests)."""
        task = self.tasks.get(key)
        st = self.results.get(key)
        names = ("held", "waiting", "ready", "running")
        return {
            "pref": list(self.ring.pref(key)),
            "task": None if task is None else {
                "state": names[task.state], "subs": sorted(task.subs),
                "missing": sorted(task.missing), "crashes": task.crashes},
            "result": None if st is None else {
                "subs": sorted(st.subs), "targets": st.targets, "coord": st.coord,
                "confirmed": st.confirmed, "acks": sorted(st.acks)},
            "pending": key in self.pending,
            "watched_by": len(self.watch.get(key, ())),
            "orphan_wants": sorted(self.orphan_wants.get(key, ())),
        }

    def state_counts(self) -> dict[str, int]:
        """How many held specs are in each state (for stats)."""
        counts = dict.fromkeys(("held", "waiting", "ready", "running"), 0)
        names = ("held", "waiting", "ready", "running")
        for task in self.tasks.values():
            counts[names[task.state]] += 1
        return counts


_PEER_HANDLERS = {
    "t": ExecCore._on_task,
    "w": ExecCore._on_want,
    "s": ExecCore._on_store,
    "a": ExecCore._on_ack,
    "r": ExecCore._on_result,
    "k": ExecCore._on_confirm,
    "x": ExecCore._on_release,
    "n": ExecCore._on_need,
}
