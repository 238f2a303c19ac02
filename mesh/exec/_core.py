"""The exec layer of one node as a sans-IO state machine.

Events go in (client messages, peer messages, executor outcomes, view
changes, ticks); each returns the effects it causes (messages to peers and
clients, :mod:`mesh.exec._effects`), and jobs are pulled with
:meth:`take_jobs`. No asyncio, no clock, no randomness: the same inputs give
the same outputs.

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
* Lost messages (a channel broke): every tick, subscribers ask again for keys
  they have waited on since the previous tick, and coordinators send stores
  that were not acknowledged again. A dependency nobody answers for is
  submitted again by the entry node that holds its spec (``n``).
* Stealing: an idle node asks a loaded one (``st``, queue depths travel in
  gossip metadata) and receives queued tasks (``g``) that it runs and
  coordinates; the owner keeps them as ``STOLEN`` and runs them itself if the
  thief dies or stays silent.

Execution is at least once: a task may run twice (a node taken for dead, a
lost message). A holder keeps the first result it stores for a key and a
client resolves a future with the first result it receives, so a future
resolves once; two runs of a non-deterministic task may leave different
values on different holders.

Every message is a record of :mod:`mesh.protocol.messages` (the letters
above are their wire codes); ``_PEER_HANDLERS`` maps each peer record to its
handler.
"""

from __future__ import annotations

from collections import deque

from mesh.exec._effects import Effect, ToClient, ToPeer
from mesh.exec._rebalance import ORPHAN_GRACE, ViewChanges
from mesh.exec._records import RUNNING, SPEC_FN, WAITING, Session, Stored, Task
from mesh.exec._ring import Ring
from mesh.exec._running import FAILED_KINDS, Running
from mesh.metrics import Metrics
from mesh.placement import DEFAULT_PROBES, DEFAULT_VNODES
from mesh.protocol.messages import (
    Ack,
    Confirm,
    Done,
    Grant,
    Hold,
    Need,
    Ping,
    Pong,
    ProtocolViolation,
    Release,
    Result,
    Steal,
    Store,
    Submit,
    Unsubscribe,
    Want,
    decode_client,
    decode_peer,
)

__all__ = ["ORPHAN_GRACE", "ExecCore", "ProtocolViolation"]


class ExecCore(ViewChanges, Running):
    """Task ownership, replication and delivery for one node. View changes
    live in :mod:`mesh.exec._rebalance`, running tasks in
    :mod:`mesh.exec._running`."""

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
        # Outputs, drained into effects by every public input
        self._to_peers: dict[str, list] = {}
        self._to_clients: dict[int, list] = {}
        self._local: deque[list] = deque()
        self.now = 0.0
        self.completed = 0
        self._stale: set[str] = set()
        self._fns: dict[bytes, bytes] = {}
        self._base: Ring | None = None
        """The ring in force when the current rebalancing pass began."""
        self._todo_tasks: list[str] = []
        self._todo_results: list[str] = []
        self._ti = 0
        self._ri = 0

    # ----------------------------------------------------------------- output
    def _send(self, dest: str, msg: object) -> None:
        if dest == self.name:
            self._local.append(msg)
        else:
            out = self._to_peers.get(dest)
            if out is None:
                self._to_peers[dest] = [msg]
            else:
                out.append(msg)

    def _to_client(self, sid: int, msg: object) -> None:
        out = self._to_clients.get(sid)
        if out is None:
            self._to_clients[sid] = [msg]
        else:
            out.append(msg)

    def _flush_local(self) -> None:
        local = self._local
        while local:
            self._on_peer(local.popleft())

    def _effects(self) -> list[Effect]:
        """Handle messages to ourselves, then hand out what is to be sent."""
        self._flush_local()
        effects: list[Effect] = []
        if self._to_peers:
            effects = [ToPeer(d, m) for d, m in self._to_peers.items()]
            self._to_peers = {}
        if self._to_clients:
            effects += [ToClient(s, m) for s, m in self._to_clients.items()]
            self._to_clients = {}
        return effects

    # --------------------------------------------------------------- sessions
    def open_session(self, sid: int) -> Session:
        sess = Session(sid, self.window)
        self.sessions[sid] = sess
        return sess

    def close_session(self, sid: int) -> list[Effect]:
        """The client went away: release everything it held."""
        sess = self.sessions.pop(sid, None)
        self._to_clients.pop(sid, None)
        if sess is not None:
            for key in sorted(sess.keys):
                self._session_release(sid, key)
        return self._effects()

    def client_messages(self, sid: int, msgs: list) -> list[Effect]:
        """Messages (wire arrays) from a client session. Raises
        :class:`ProtocolViolation`; the effects of the messages before the bad
        one are still carried out by :meth:`close_session`'s caller."""
        sess = self.sessions.get(sid)
        if sess is None:
            return []
        try:
            for raw in msgs:
                msg = decode_client(raw)
                if type(msg) is Submit:
                    if sess.inflight >= sess.window:
                        raise ProtocolViolation(
                            f"client submitted beyond its credit of {sess.window} tasks")
                    self._client_submit(sess, msg.key, msg.spec())
                elif type(msg) is Release:
                    if msg.key in sess.keys:
                        sess.keys.discard(msg.key)
                        self._session_release(sid, msg.key)
                elif type(msg) is Ping:
                    self._to_client(sid, Pong())  # keepalive: the client checks we live
        finally:
            self._flush_local()
        return self._effects()

    def _intern(self, fn: bytes) -> bytes:
        """One copy of each pickled function: a map of 100,000 tasks carries
        the same function bytes in every spec."""
        got = self._fns.get(fn)
        if got is None:
            if len(self._fns) >= 1024:
                self._fns.clear()
            self._fns[fn] = got = fn
        return got

    def _client_submit(self, sess: Session, key: str, spec: list) -> None:
        if key in sess.keys:
            return  # a client submits each key once per session
        sess.keys.add(key)
        spec[SPEC_FN] = self._intern(spec[SPEC_FN])
        self.specs[key] = spec
        sess.inflight += 1
        held = self.held.get(key)
        if held is None:
            self.held[key] = {sess.sid}
        else:
            held.add(sess.sid)
        st = self.results.get(key)
        if st is not None and st.confirmed:
            self._to_client(sess.sid, Done(key, st.kind, st.payload))
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
            self._send(n, Unsubscribe(key, self.name))

    def _request(self, key: str, spec: list | None) -> None:
        """Ask the key's holders for its result (submitting ``spec`` if known)."""
        pref = self.ring.pref(key)
        for n in pref:
            if spec is not None:
                self._send(n, Hold(key, spec, [self.name], list(pref)))
            else:
                self._send(n, Want(key, self.name))

    # ---------------------------------------------------------------- delivery
    def _deliver(self, key: str, kind: int, payload: bytes) -> None:
        """A confirmed result reached this node as a subscriber."""
        self.pending.pop(key, None)
        watchers = self.watch.pop(key, None)
        if watchers:
            msg = Done(key, kind, payload)
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
                if kind in FAILED_KINDS:
                    self._complete(task, kind, payload)
                elif not task.missing:
                    self._queue(task)

    # ------------------------------------------------------------------ peers
    def peer_messages(self, src: str, msgs: list) -> list[Effect]:
        """Messages (wire arrays) from node ``src``. Raises
        :class:`ProtocolViolation`."""
        try:
            for raw in msgs:
                self._on_peer(decode_peer(raw))
        finally:
            self._flush_local()
        return self._effects()

    def _on_peer(self, msg: object) -> None:
        _PEER_HANDLERS[type(msg)](self, msg)

    def _on_task(self, msg: Hold) -> None:
        key, spec, subs, sent_to = msg.key, msg.spec, msg.subs, msg.sent_to
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
        spec[SPEC_FN] = self._intern(spec[SPEC_FN])
        task = Task(key, spec, subs)
        self.tasks[key] = task
        pref = self.ring.pref(key)
        missed = [n for n in pref if n not in sent_to and n != self.name]
        if missed:  # our views differ: make sure the holders we see get it too
            fwd = Hold(key, spec, sorted(subs), sorted({*sent_to, *pref}))
            for n in missed:
                self._send(n, fwd)
        if pref and pref[0] == self.name:
            self._activate(task)

    def _on_want(self, msg: Want) -> None:
        key, sub = msg.key, msg.sub
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
                    self._send(sub, Result(key, st.kind, st.payload))

    def _on_store(self, msg: Store) -> None:
        key, kind, payload, targets = msg.key, msg.kind, msg.payload, msg.targets
        subs, coord, confirmed = msg.subs, msg.coord, msg.confirmed
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
                fwd = Store(key, kind, payload, sorted({*targets, *pref}), sorted(st.subs),
                            self.name, st.confirmed)
                for n in missed:
                    self._send(n, fwd)
        else:
            st.subs.update(subs)
            st.subs |= extra
            if confirmed:
                st.confirmed = True
        if coord != self.name:
            self._send(coord, Ack(key, self.name))
        if st.confirmed and (key in self.watch or key in self.waiters or key in self.pending):
            self._deliver(key, kind, payload)
        for sub in sorted(wanted):  # subscribers the coordinator did not know about
            self._send(sub, Result(key, kind, payload))

    def _on_ack(self, msg: Ack) -> None:
        key, holder = msg.key, msg.holder
        st = self.results.get(key)
        if st is None or st.confirmed:
            return
        st.acks.add(holder)
        self._check_confirmed(key, st)

    def _on_result(self, msg: Result) -> None:
        key, kind, payload = msg.key, msg.kind, msg.payload
        st = self.results.get(key)
        if st is not None and not st.confirmed:
            st.confirmed = True
        if key in self.watch or key in self.waiters or key in self.pending:
            self._deliver(key, kind, payload)

    def _on_confirm(self, msg: Confirm) -> None:
        key = msg.key
        st = self.results.get(key)
        if st is not None and not st.confirmed:
            st.confirmed = True
            if key in self.watch or key in self.waiters or key in self.pending:
                self._deliver(key, st.kind, st.payload)

    def _on_need(self, msg: Need) -> None:
        key = msg.key
        spec = self.specs.get(key)
        if spec is not None:
            self.metrics.inc("exec_lost_keys_resubmitted")
            self._request(key, spec)

    def _on_release(self, msg: Unsubscribe) -> None:
        key, sub = msg.key, msg.sub
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

    # ----------------------------------------------------------------- status
    def queue_depth(self) -> int:
        return len(self.ready)

    def describe(self, key: str) -> dict[str, object]:
        """Where ``key`` stands on this node (for operators and tests)."""
        task = self.tasks.get(key)
        st = self.results.get(key)
        names = ("held", "waiting", "ready", "running", "stolen")
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
        counts = dict.fromkeys(("held", "waiting", "ready", "running", "stolen"), 0)
        names = ("held", "waiting", "ready", "running", "stolen")
        for task in self.tasks.values():
            counts[names[task.state]] += 1
        return counts


_PEER_HANDLERS = {
    Hold: ExecCore._on_task,
    Want: ExecCore._on_want,
    Store: ExecCore._on_store,
    Ack: ExecCore._on_ack,
    Result: ExecCore._on_result,
    Confirm: ExecCore._on_confirm,
    Unsubscribe: ExecCore._on_release,
    Need: ExecCore._on_need,
    Steal: ExecCore._on_steal,
    Grant: ExecCore._on_given,
}
