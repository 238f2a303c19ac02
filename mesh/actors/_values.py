"""Actor calls and the mesh's values, sans-IO: futures as call arguments, a
call's result as a value the exec layer fetches by key, and who holds a key.

A component of :class:`mesh.actors._core.ActorCore`, over the exec core's
:class:`~mesh.exec._table.Table` and its subscriber: no second path.

* **Futures as arguments (host).** A call whose arguments hold futures
  (``ActorCall.deps``) asks for their values as a task's owner does: the
  node waits for the key (``Table.pending``), holds it (``Table.interest``,
  so the data plane keeps a large value in the store) and asks the key's
  holders (``Want``); a large value arrives by chunked transfer. The exec
  core tells :meth:`Values.arrived` of every value that reaches the node.
  The call runs once all arrived; until then it holds back the later calls
  of its caller (:attr:`~mesh.actors._host.Hosted.blocked`), as in Ray. The
  node lets go of the values once the call is answered (or leaves the host).
  A failed input fails the call with the same error, without running it.
* **A call's result as a value (entry).** Once a call's future is an
  argument of a task or of another call, its client sends the call's outcome
  (:class:`ActorPublish`) and the entry node stores it under the call's key
  on the key's preference list, as a task's coordinator stores a result;
  the session holds it until it releases the key, as for a task.
* **Who holds a key** (:class:`KeyFind`): relayed to the first node of the
  key's list, which answers with the alive nodes its copy was stored on.
* **Large results (host, entry).** A call's result of at least
  ``Config.locality_bytes`` becomes a value in the store under the call's
  key, on the key's R nodes, as a task's result (:meth:`Values.store`); the
  call is answered ``REMOTE`` (and so recorded, and replicated, small). An
  entry that passes a ``REMOTE`` answer to a session holds the key for it
  and subscribes to it without fetching (:meth:`Values.hold`); the client
  fetches it when the value is wanted (``Fetch``), as a task's.
"""

from __future__ import annotations

from typing import Any

import msgpack

from mesh.actors._records import CallState
from mesh.exec._records import Stored
from mesh.protocol import payload as P
from mesh.protocol.messages import (
    ActorPublish,
    ActorReply,
    Done,
    KeyFind,
    Need,
    ProtocolViolation,
    Store,
)

__all__ = ["Values"]

ACTOR_PREFIX = "actor-"


class Values:
    """Dependency values of hosted calls, published results, key lookups."""

    def __init__(self, core: Any, exec_core: Any) -> None:
        self.x = core
        self.t = core.t
        self.exec = exec_core
        self.waiting: dict[str, list[tuple[str, CallState]]] = {}
        """Per dependency key, the hosted calls waiting for its value."""
        self.needed: dict[str, float] = {}
        """When each awaited key was last said to be missing (``Need``)."""
        if exec_core is not None:
            self.t.listeners.append(self.arrived)
        self.land: Any = None
        """Keeps a value in this node's store (the data plane's ``landed``);
        None (the simulator's inline workers): large results fail instead."""

    # ---------------------------------------------------------- host side
    def fetch(self, actor: str, cs: CallState) -> None:
        """Hold and ask for the values of ``cs``'s dependencies; those not on
        this node yet are left in ``cs.missing``."""
        t = self.t
        cs.depvals, cs.missing = {}, set()
        if self.exec is None:
            kind, payload = P.dumps_error(RuntimeError(
                "this node's actor layer runs without an exec core: it cannot fetch values"))
            cs.depvals = {dep: [kind, payload] for dep in cs.call.deps}
            return
        for dep in dict.fromkeys(cs.call.deps):
            t.interest[dep] = t.interest.get(dep, 0) + 1  # balanced by release()
            st = t.results.get(dep)
            if st is not None and st.confirmed:
                cs.depvals[dep] = [st.kind, st.payload]
                continue
            cs.missing.add(dep)
            self.waiting.setdefault(dep, []).append((actor, cs))
            if dep not in t.pending:
                t.pending[dep] = None
                self.exec.subscriber.request(dep, None)

    def arrived(self, dep: str, kind: int, payload: Any) -> None:
        """The exec core delivered the value of ``dep`` to this node."""
        waiting = self.waiting.pop(dep, None)
        if not waiting:
            return
        host = self.x.host
        for actor, cs in waiting:
            if cs.missing is None or dep not in cs.missing or cs.depvals is None:
                continue
            cs.missing.discard(dep)
            cs.depvals[dep] = [kind, payload]
            if not cs.missing:
                h = host.hosted.get(actor)
                if h is not None and h.calls.get((cs.call.caller, cs.call.seq)) is cs:
                    host.unblock(h, cs.call.caller)
        self.x.woken()

    def tick(self, now: float) -> None:
        """A value awaited for a while may be lost with every node that held
        it: tell the entries of the calls that wait (``Need``, as a task's
        owner tells its subscribers), which submit it again from its spec or
        ask their client to."""
        for dep, waiting in self.waiting.items():
            since = self.needed.setdefault(dep, now)
            if now - since < self.x.resend:
                continue
            self.needed[dep] = now
            entries = sorted({e for _, cs in waiting for e in cs.entries})
            for entry in entries:
                self.x.send(entry, Need(dep))
        for dep in [d for d in self.needed if d not in self.waiting]:
            del self.needed[dep]

    def release(self, cs: CallState) -> None:
        """``cs`` was answered or left this host: let go of its values."""
        if cs.depvals is None or self.exec is None:
            return
        cs.depvals, cs.missing = None, None
        t = self.t
        for dep in dict.fromkeys(cs.call.deps):
            waiting = self.waiting.get(dep)
            if waiting:
                waiting[:] = [w for w in waiting if w[1] is not cs]
                if not waiting:
                    del self.waiting[dep]
            n = t.interest.get(dep, 0) - 1
            if n > 0:
                t.interest[dep] = n
            else:
                t.interest.pop(dep, None)
                self.exec.subscriber.maybe_release(dep)

    # --------------------------------------------------------- entry side
    def publish(self, sid: int, msg: ActorPublish) -> None:
        """Store a call's outcome under its key on the key's nodes; the
        session ``sid`` holds it until it releases the key."""
        t = self.t
        key = msg.key
        if not key.startswith(ACTOR_PREFIX):
            raise ProtocolViolation(
                f"a client may publish only actor call results, not {key!r:.60}")
        sess = t.sessions.get(sid)
        if sess is None:
            return
        t.to_client(sid, Done(key, *P.dumps_value(None)))
        if self.exec is None:
            return
        sess.keys.add(key)
        sess.lost.discard(key)
        t.held.setdefault(key, set()).add(sid)
        me = t.name
        st = t.results.get(key)
        if st is not None:
            st.subs.add(me)
            return
        r = t.replicas
        targets = list(t.ring.pref(key, r))
        st = Stored(msg.kind, msg.payload, {me}, targets, me, replicas=r)
        st.acks.add(me)
        t.results[key] = st
        for n in targets:
            if n != me:
                t.send(n, Store(key, msg.kind, msg.payload, targets, [me], me, False, r))
        self.exec.running.check_confirmed(key, st)
        t.metrics.inc("actor_results_published")

    def result(self, key: str, kind: int, payload: bytes) -> tuple[int, bytes]:
        """A call's outcome as it is answered: a whole pickle of at least
        ``locality_bytes`` is kept in the store (:meth:`store`), ``REMOTE``."""
        if kind == P.OK_PICKLE and len(payload) >= self.t.locality_bytes:
            return self.store(key, payload) or (kind, payload)
        return kind, payload

    def store(self, key: str, payload: bytes) -> tuple[int, bytes] | None:
        """Keep call ``key``'s large result (a whole pickle) in the store on
        the key's nodes, coordinated here as a task's result; its answer
        ``REMOTE``, or None if this node keeps no values."""
        if self.land is None or self.exec is None:
            return None
        from mesh.store import Value, wrap_pickled

        t = self.t
        if key in t.results:  # run again (a crash before a quiet point): the same key
            return P.REMOTE, msgpack.packb([len(payload)])
        value = self.land(key, Value.of(*wrap_pickled(payload)))
        me = t.name
        r = t.replicas
        targets = list(t.ring.pref(key, r))
        st = Stored(P.OK_VALUE, value, set(), targets, me, replicas=r)
        st.acks.add(me)
        t.results[key] = st
        t.orphan_if_unsubscribed(key, st.subs)  # kept for a grace until an entry holds it
        for n in targets:
            if n != me:
                t.send(n, Store(key, P.OK_VALUE, value, targets, [], me, False, r))
        self.exec.running.check_confirmed(key, st)
        t.metrics.inc("actor_results_stored")
        return P.REMOTE, msgpack.packb([len(payload)])

    def hold(self, sid: int, key: str) -> None:
        """Session ``sid`` is told call ``key`` is done and kept on the mesh:
        it holds the key (its release frees the value), and this node
        subscribes, locating the value without fetching it."""
        t = self.t
        sess = t.sessions.get(sid)
        if sess is None or self.exec is None or key in sess.keys:
            return
        sess.keys.add(key)
        t.held.setdefault(key, set()).add(sid)
        if key not in t.pending:
            t.pending[key] = None
            t.locating.add(key)
            self.exec.subscriber.request(key, None)

    def key_find(self, entry: str, msg: KeyFind) -> None:
        """Which alive nodes hold ``msg.actor``'s result (as its copy here says)."""
        t = self.t
        st = t.results.get(msg.actor)
        alive = t.ring.names
        nodes = [] if st is None else [n for n in st.targets if n in alive]
        if st is not None and t.name not in nodes:
            nodes.insert(0, t.name)
        self.x.send(entry, ActorReply(msg.key, *P.dumps_value({"nodes": nodes})))
