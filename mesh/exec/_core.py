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
* Rechecks (``c``): every ``recheck`` seconds a holder asks the subscribers
  of what it holds whether they still need it; each answers with an
  unsubscribe for the keys it does not (a release it sent was lost, went to
  the holders of another view, or died with its process).
* Stealing: an idle node asks a loaded one (``st``, queue depths travel in
  gossip metadata) and receives queued tasks (``g``) that it runs and
  coordinates; the owner keeps them as ``STOLEN`` and runs them itself if the
  thief dies or stays silent.

Execution is at least once: a task may run twice (a node taken for dead, a
lost message). A holder keeps the first result it stores for a key and a
client resolves a future with the first result it receives, so a future
resolves once; two runs of a non-deterministic task may leave different
values on different holders.

The core is a facade over components that share one
:class:`~mesh.exec._table.Table`: :class:`~mesh.exec._subscriber.Subscriber`
(sessions, requests, delivery, release), :class:`~mesh.exec._holder.Holder`
(specs and results held for the preference list),
:class:`~mesh.exec._running.Running` (queue, executor outcomes, replication,
stealing) and :class:`~mesh.exec._rebalance.ViewChanges` (view changes, ticks).
A task moves between states only along :data:`mesh.exec._records.TRANSITIONS`.

Every message is a record of :mod:`mesh.protocol.messages` (the letters
above are their wire codes); ``_PEER_HANDLERS`` maps each peer record to its
handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mesh.config import DEFAULT
from mesh.exec._effects import Effect, ToClient, ToPeer
from mesh.exec._executor import Job, Outcome
from mesh.exec._holder import Holder
from mesh.exec._rebalance import ViewChanges
from mesh.exec._records import STATE_NAMES, Session, Stored, Task
from mesh.exec._ring import Ring
from mesh.exec._running import Running
from mesh.exec._subscriber import Subscriber
from mesh.exec._table import Table
from mesh.metrics import Metrics
from mesh.protocol.messages import (
    Ack,
    Confirm,
    Fetch,
    Grant,
    Hold,
    Keep,
    Located,
    Need,
    Ping,
    Pong,
    ProtocolViolation,
    Recheck,
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

__all__ = ["ExecCore", "ProtocolViolation"]


class ExecCore:
    """Task ownership, replication and delivery for one node. Every input
    returns the effects it caused."""

    def __init__(self, name: str, *, replicas: int, max_crashes: int, metrics: Metrics,
                 window: int = DEFAULT.client_window, vnodes: int = DEFAULT.placement_vnodes,
                 probes: int = DEFAULT.placement_probes,
                 max_points: int = DEFAULT.placement_max_points,
                 orphan_grace: float = DEFAULT.orphan_grace,
                 stolen_patience: int = DEFAULT.stolen_patience,
                 locality_bytes: int = DEFAULT.locality_bytes,
                 recheck: float = DEFAULT.subscription_recheck) -> None:
        ring = Ring([(name, 1)], replicas, vnodes=vnodes, probes=probes, max_points=max_points)
        self.table = t = Table(name, replicas, max_crashes, metrics, window, ring,
                               vnodes, probes, max_points, locality_bytes=locality_bytes)
        self.subscriber = Subscriber(t)
        self.running = Running(t, self.subscriber)
        self.subscriber.running = self.running
        self.holder = Holder(t, self.subscriber, self.running)
        self.views = ViewChanges(t, self.subscriber, self.running,
                                 orphan_grace=orphan_grace, stolen_patience=stolen_patience,
                                 recheck=recheck)
        h, r, sub = self.holder, self.running, self.subscriber
        self._peer_handlers: dict[type, Callable[[Any], None]] = {
            Hold: h.on_hold, Want: h.on_want, Store: h.on_store, Ack: h.on_ack,
            Result: sub.on_result, Confirm: h.on_confirm, Unsubscribe: h.on_unsubscribe,
            Need: sub.on_need, Steal: r.on_steal, Grant: r.on_given, Recheck: sub.on_recheck,
            Keep: r.lineage.on_keep, Located: r.locality.on_located,
        }
        self._client_handlers: dict[type, Callable[[int, Any, list], None]] = {}

    def add_handlers(self, client: dict[type, Callable[[int, Any, list], None]],
                     peer: dict[type, Callable[[Any], None]]) -> None:
        """Let another layer (mesh.actors) handle its own records on the exec
        channels; what they send goes through :attr:`table` like ours."""
        self._client_handlers.update(client)
        self._peer_handlers.update(peer)

    def flush(self) -> list[Effect]:
        """The effects another layer queued on the table outside our inputs."""
        return self._effects()

    # ------------------------------------------------------- read-only views
    @property
    def name(self) -> str:
        return self.table.name

    @property
    def ring(self) -> Ring:
        return self.table.ring

    @property
    def tasks(self) -> dict[str, Task]:
        return self.table.tasks

    @property
    def results(self) -> dict[str, Stored]:
        return self.table.results

    @property
    def sessions(self) -> dict[int, Session]:
        return self.table.sessions

    @property
    def pending(self) -> dict[str, list | None]:
        return self.table.pending

    @property
    def completed(self) -> int:
        return self.table.completed

    # ----------------------------------------------------------------- output
    def _flush_local(self) -> None:
        local = self.table.local
        handlers = self._peer_handlers
        while local:
            msg = local.popleft()
            handlers[type(msg)](msg)

    def _effects(self) -> list[Effect]:
        """Handle messages to ourselves, then hand out what is to be sent."""
        self._flush_local()
        t = self.table
        effects: list[Effect] = []
        if t.to_peers:
            if t.lazy:
                lazy = t.lazy
                effects = [ToPeer(d, m, d not in lazy) for d, m in t.to_peers.items()]
                t.lazy = set()
            else:
                effects = [ToPeer(d, m) for d, m in t.to_peers.items()]
            t.to_peers = {}
        if t.to_clients:
            effects += [ToClient(s, m) for s, m in t.to_clients.items()]
            t.to_clients = {}
        return effects

    # --------------------------------------------------------------- sessions
    def open_session(self, sid: int) -> Session:
        sess = Session(sid, self.table.window)
        self.table.sessions[sid] = sess
        return sess

    def close_session(self, sid: int) -> list[Effect]:
        """The client went away: release everything it held."""
        t = self.table
        sess = t.sessions.pop(sid, None)
        t.to_clients.pop(sid, None)
        if sess is not None:
            for key in sorted(sess.keys):
                self.subscriber.session_release(sid, key)
        return self._effects()

    def client_messages(self, sid: int, msgs: list) -> list[Effect]:
        """Messages (wire arrays) from a client session. Raises
        :class:`ProtocolViolation`; what the messages before the bad one
        caused goes out with the next input's effects."""
        sess = self.table.sessions.get(sid)
        if sess is None:
            return []
        sub = self.subscriber
        try:
            for raw in msgs:
                msg = decode_client(raw)
                if type(msg) is Submit:
                    if sess.inflight >= sess.window:
                        raise ProtocolViolation(
                            f"client submitted beyond its credit of {sess.window} tasks")
                    sub.submit(sess, msg.key, msg.spec())
                elif type(msg) is Release:
                    if msg.key in sess.keys:
                        sess.keys.discard(msg.key)
                        sess.lost.discard(msg.key)
                        sub.session_release(sid, msg.key)
                        # Our own unsubscription goes first: a Submit of the same key
                        # later in this batch must not find a result about to go.
                        self._flush_local()
                elif type(msg) is Fetch:
                    if sess.inflight >= sess.window:
                        raise ProtocolViolation(
                            f"client fetched beyond its credit of {sess.window} tasks")
                    sub.fetch(sess, msg.key)
                elif type(msg) is Ping:
                    self.table.to_client(sid, Pong())  # keepalive: the client checks we live
                elif (handler := self._client_handlers.get(type(msg))) is not None:
                    handler(sid, msg, raw)  # another layer's record (mesh.actors)
        finally:
            self._flush_local()
        return self._effects()

    # ------------------------------------------------------------------ peers
    def peer_messages(self, src: str, msgs: list) -> list[Effect]:
        """Messages (wire arrays) from node ``src``. Raises
        :class:`ProtocolViolation`."""
        handlers = self._peer_handlers
        try:
            for raw in msgs:
                msg = decode_peer(raw)
                handlers[type(msg)](msg)
        finally:
            self._flush_local()
        return self._effects()

    def peer_records(self, src: str, msgs: list) -> list[Effect]:
        """Decoded messages from node ``src``: those whose values arrived by
        transfer (:mod:`mesh.store._channel`), their payloads Values."""
        handlers = self._peer_handlers
        try:
            for msg in msgs:
                handlers[type(msg)](msg)
        finally:
            self._flush_local()
        return self._effects()

    # -------------------------------------------------------------- execution
    def take_jobs(self, n: int) -> tuple[list[Job], list[Job]]:
        """Up to ``n`` queued tasks as executor jobs: ``(batchable, solo)``."""
        return self.running.take_jobs(n)

    def has_ready(self) -> bool:
        return bool(self.table.ready)

    def next_function(self) -> bytes | None:
        return self.running.next_function()

    def outcomes(self, outs: list[Outcome]) -> list[Effect]:
        """Results from the executor."""
        self.running.outcomes(outs)
        return self._effects()

    def steal_from(self, victim: str, n: int) -> list[Effect]:
        """This node is idle: ask ``victim`` for up to ``n`` queued tasks."""
        self.running.steal_from(victim, n)
        return self._effects()

    # ------------------------------------------------------------ view, time
    def set_view(self, members: list[tuple[str, int]], now: float,
                 ring: Ring | None = None) -> list[Effect]:
        """The alive members changed (see :meth:`ViewChanges.set_view`)."""
        self.views.set_view(members, now, ring)
        return self._effects()

    def rebalancing(self) -> bool:
        return self.views.rebalancing()

    def rebalance_step(self, budget: int) -> list[Effect]:
        """Examine up to ``budget`` held keys; :meth:`rebalancing` says
        whether keys remain."""
        self.views.rebalance_step(budget)
        return self._effects()

    def tick(self, now: float) -> list[Effect]:
        self.views.tick(now)
        self._flush_local()
        self.views.expire_orphans(now)
        return self._effects()

    # ----------------------------------------------------------------- status
    def set_depths(self, depths: dict[str, int]) -> None:
        """Peers' queue depths from gossip metadata (locality skips a busy node)."""
        self.table.depths = {n: q for n, q in depths.items() if type(q) is int}

    def queue_depth(self) -> int:
        return len(self.table.ready)

    def describe(self, key: str) -> dict[str, object]:
        """Where ``key`` stands on this node (for operators and tests)."""
        t = self.table
        task = t.tasks.get(key)
        st = t.results.get(key)
        return {
            "pref": list(t.ring.pref(key)),
            "task": None if task is None else {
                "state": STATE_NAMES[task.state], "subs": sorted(task.subs),
                "missing": sorted(task.missing), "crashes": task.crashes},
            "result": None if st is None else {
                "subs": sorted(st.subs), "targets": st.targets, "coord": st.coord,
                "confirmed": st.confirmed, "acks": sorted(st.acks)},
            "pending": key in t.pending,
            "watched_by": len(t.watch.get(key, ())),
            "orphan_wants": sorted(t.orphan_wants.get(key, ())),
        }

    def counts(self) -> dict[str, object]:
        """This node's exec figures for ``/v1/exec/stats``."""
        t = self.table
        return {"completed": t.completed, "queued": len(t.ready), "tasks": len(t.tasks),
                "results": len(t.results), "sessions": len(t.sessions),
                "waiting_for": len(t.pending), "waiters": len(t.waiters),
                "orphan_wants": len(t.orphan_wants), "states": self.state_counts()}

    def state_counts(self) -> dict[str, int]:
        """How many held specs are in each state (for stats)."""
        counts = dict.fromkeys(STATE_NAMES, 0)
        for task in self.table.tasks.values():
            counts[STATE_NAMES[task.state]] += 1
        return counts
