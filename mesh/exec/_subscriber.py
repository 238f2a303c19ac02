"""The subscriber side of the exec core: client sessions, asking holders for
results, delivering them, and releasing keys nobody needs.

A component of :class:`mesh.exec._core.ExecCore` (see that module for the
protocol) over the shared :class:`~mesh.exec._table.Table`; it implements
:class:`~mesh.exec._table.Subscriptions`. Sans-IO.
"""

from __future__ import annotations

from typing import Any

import msgpack

from mesh.exec._locality import nbytes as value_size
from mesh.exec._records import SPEC_REPLICAS, Session
from mesh.exec._running import Running
from mesh.exec._table import Table
from mesh.protocol import payload as P
from mesh.protocol.messages import (
    Done,
    Hold,
    Lost,
    Need,
    Recheck,
    Result,
    Unsubscribe,
    Want,
)


class Subscriber:
    """What this node waits for, and for whom (client sessions, local tasks)."""

    def __init__(self, table: Table) -> None:
        self.t = table
        self.running: Running | None = None
        """Set by the core once the running component exists (they call each
        other: results wake local tasks, tasks ask for their dependencies)."""

    # --------------------------------------------------------------- sessions
    def submit(self, sess: Session, key: str, spec: list) -> None:
        """A client attached to this node submits (or re-attaches to) ``key``."""
        t = self.t
        if key in sess.keys:
            if key not in sess.lost:
                return  # a client submits each key once per session, unless told it was lost
            sess.lost.discard(key)
        sess.keys.add(key)
        spec[0] = t.intern(spec[0])
        if not spec[SPEC_REPLICAS]:
            spec[SPEC_REPLICAS] = t.replicas  # R travels in the spec from here on
        t.specs[key] = spec
        sess.inflight += 1
        held = t.held.get(key)
        if held is None:
            t.held[key] = {sess.sid}
        else:
            held.add(sess.sid)
        st = t.results.get(key)
        if st is not None and st.confirmed:
            t.to_client(sess.sid, self.done(key, st.kind, st.payload))
            sess.inflight -= 1
            if t.name not in st.subs:  # we hold a copy for others: subscribe, to keep it
                self.request(key, spec)
            t.specs.pop(key, None)  # delivered: the client keeps the spec
            return
        _add(t.watch, key, sess.sid)
        if key not in t.pending or t.pending[key] is None:
            t.pending[key] = spec
            if key not in t.waiters and key not in t.fetch:  # its location will do
                t.locating.add(key)
            self.request(key, spec)

    def fetch(self, sess: Session, key: str) -> None:
        """A client attached here wants the value of ``key``, a held key it
        was told is done and kept on the mesh (``REMOTE``)."""
        t = self.t
        sess.inflight += 1  # a fetch takes one credit, as a submit does
        st = t.results.get(key)
        if key not in sess.keys or (st is not None and st.confirmed):
            t.to_client(sess.sid, Done(key, st.kind, st.payload) if key in sess.keys
                        else Done(key, P.FAILED, b"mesh: fetch of a key this client does "
                                                 b"not hold (released, or never submitted)"))
            sess.inflight -= 1
            return
        _add(t.fetch, key, sess.sid)
        t.locating.discard(key)
        if key not in t.pending:
            t.pending[key] = None
        self.request(key, None)  # a holder that only located it sends it now

    def done(self, key: str, kind: int, payload: Any) -> Done:
        """What tells a client that ``key`` finished: its result, or ``REMOTE``
        for a value of ``locality_bytes`` or more, which stays on the mesh
        until the client fetches it."""
        if kind == P.OK_VALUE and (n := value_size(payload)) >= self.t.locality_bytes:
            return Done(key, P.REMOTE, msgpack.packb([n]))
        return Done(key, kind, payload)

    def located(self, key: str, nbytes: int) -> None:
        t = self.t
        watchers = t.watch.pop(key, None)
        if not watchers:
            return
        t.specs.pop(key, None)  # done: its client keeps the spec
        msg = Done(key, P.REMOTE, msgpack.packb([nbytes]))
        for sid in sorted(watchers):
            t.to_client(sid, msg)
            sess = t.sessions.get(sid)
            if sess is not None:
                sess.inflight -= 1

    def session_release(self, sid: int, key: str) -> None:
        """Session ``sid`` no longer holds ``key``."""
        t = self.t
        held = t.held.get(key)
        if held is not None:
            held.discard(sid)
            if not held:
                del t.held[key]
                t.specs.pop(key, None)
        for waiting in (t.watch, t.fetch):
            sids = waiting.get(key)
            if sids is not None and sid in sids:
                sids.discard(sid)
                sess = t.sessions.get(sid)
                if sess is not None:
                    sess.inflight -= 1
                if not sids:
                    del waiting[key]
        self.maybe_release(key)

    def needed(self, key: str) -> bool:
        """Whether a client or a local task here still needs ``key``."""
        t = self.t
        return bool(key in t.held or t.interest.get(key) or key in t.watch
                    or key in t.waiters or key in t.fetch)

    def maybe_release(self, key: str) -> None:
        """Unsubscribe from ``key``'s holders once nothing here needs it."""
        if self.needed(key):
            return
        t = self.t
        t.pending.pop(key, None)
        t.locating.discard(key)
        targets = list(t.ring.pref(key))
        earlier = t.asked.pop(key, None)
        if earlier:  # holders asked in an earlier view (those still in ours)
            targets += sorted((earlier & t.ring.names).difference(targets))
        for n in targets:
            t.send(n, Unsubscribe(key, t.name))

    def on_recheck(self, msg: Recheck) -> None:
        """A holder keeps ``msg.keys`` for us: release, to it, each we no
        longer need (our release never reached it)."""
        t = self.t
        for key in msg.keys:
            if not self.needed(key) and not self.waits_for(key):
                t.send(msg.holder, Unsubscribe(key, t.name))

    def request(self, key: str, spec: list | None) -> None:
        """Ask the key's holders for its result (submitting ``spec`` if known)."""
        t = self.t
        if spec is not None:
            pref = t.spec_list(key, t.replicas_of(spec))
            msg = Hold(key, spec, [t.name], list(pref), [t.name] if key in t.locating else [])
            for n in pref:
                t.send(n, msg)
        else:
            msg = Want(key, t.name, key in t.locating)
            for n in t.ring.pref(key):
                t.send(n, msg)

    def waits_for(self, key: str) -> bool:
        t = self.t
        return key in t.watch or key in t.waiters or key in t.pending or key in t.fetch

    # ---------------------------------------------------------------- delivery
    def deliver(self, key: str, kind: int, payload: bytes) -> None:
        """A confirmed result reached this node as a subscriber."""
        t = self.t
        t.pending.pop(key, None)
        t.specs.pop(key, None)  # a held key costs its result; its client keeps the spec
        for waiting in (t.watch, t.fetch):
            sids = waiting.pop(key, None)
            if not sids:
                continue
            msg = self.done(key, kind, payload) if waiting is t.watch else Done(key, kind, payload)
            for sid in sorted(sids):
                t.to_client(sid, msg)
                sess = t.sessions.get(sid)
                if sess is not None:
                    sess.inflight -= 1
        assert self.running is not None
        self.running.dependency_arrived(key, kind, payload)

    def arrived(self, key: str, kind: int, payload: bytes) -> None:
        """A confirmed result reached this node, named as a subscriber:
        deliver it, or release it again if nothing here needs it any more.

        A release can overtake the store that names us: whoever ran the task
        stores its result, and a thief is not in the key's list, so it never
        hears of the release (nor does this node when it is the thief). A
        result is confirmed only once every holder acknowledged its store, so
        a release sent now reaches each holder behind it."""
        if self.waits_for(key):
            self.deliver(key, kind, payload)
        elif not self.needed(key):
            self.maybe_release(key)

    def on_result(self, msg: Result) -> None:
        st = self.t.results.get(msg.key)
        if st is not None and not st.confirmed:
            st.confirmed = True
        self.arrived(msg.key, msg.kind, msg.payload)

    def on_need(self, msg: Need) -> None:
        """Nobody answers for ``key``: submit it again if a client here gave
        it, from its spec, or (once delivered) by asking its clients to."""
        t, key = self.t, msg.key
        spec = t.specs.get(key)
        if spec is not None:
            t.metrics.inc("exec_lost_keys_resubmitted")
            self.request(key, spec)
            return
        for sid in sorted(t.held.get(key, ())):
            sess = t.sessions.get(sid)
            if sess is not None and key in sess.keys and key not in sess.lost:
                sess.lost.add(key)  # its next Submit of key is taken
                t.metrics.inc("exec_lost_keys_returned")
                t.to_client(sid, Lost(key))


def _add(sessions: dict[str, set[int]], key: str, sid: int) -> None:
    """Add session ``sid`` to those waiting for ``key``."""
    waiting = sessions.get(key)
    if waiting is None:
        sessions[key] = {sid}
    else:
        waiting.add(sid)
