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

Every message is a list whose first item names it (see ``_PEER_HANDLERS``).
"""

from __future__ import annotations

from collections import deque

from mesh.exec._rebalance import ORPHAN_GRACE, ViewChanges
from mesh.exec._records import RUNNING, SPEC_DEPS, SPEC_FN, WAITING, Session, Stored, Task
from mesh.exec._ring import Ring
from mesh.exec._running import FAILED_KINDS, Running
from mesh.metrics import Metrics
from mesh.placement import DEFAULT_PROBES, DEFAULT_VNODES

__all__ = ["ORPHAN_GRACE", "ExecCore", "ProtocolViolation"]


class ProtocolViolation(Exception):
    """A client or peer sent a message that breaks the protocol (unknown
    operation, wrong shape, more tasks than its credit). The channel that
    carried it is closed."""


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
        # Outputs
        self.to_peers: dict[str, list] = {}
        self.to_clients: dict[int, list] = {}
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
                elif op == "p":
                    self._to_client(sid, ["p"])  # keepalive: the client checks we live
                else:
                    raise ProtocolViolation(f"unknown client operation {op!r}")
        except (ValueError, TypeError, IndexError) as exc:
            raise ProtocolViolation(f"malformed client message: {exc}") from None
        finally:
            self._flush_local()

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
                if kind in FAILED_KINDS:
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
        spec[SPEC_FN] = self._intern(spec[SPEC_FN])
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
            if st.coord == self.name:
                # Our store may reach a replica after sub's own release did, and
                # name sub as a subscriber there: release it behind the store.
                for n in st.targets:
                    if n != self.name:
                        self._send(n, ["x", key, sub])
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
    "t": ExecCore._on_task,
    "w": ExecCore._on_want,
    "s": ExecCore._on_store,
    "a": ExecCore._on_ack,
    "r": ExecCore._on_result,
    "k": ExecCore._on_confirm,
    "x": ExecCore._on_release,
    "n": ExecCore._on_need,
    "st": ExecCore._on_steal,
    "g": ExecCore._on_given,
}
