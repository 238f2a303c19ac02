"""Values a client scattered, in the exec core: a value that arrived whole
from a client becomes the result of its key, kept on the key's ``replicas``
nodes like a task's result. Sans-IO, over the core's shared table.

The entry node that received the value coordinates it as if it had run a
task of that key (as a thief coordinates a stolen task): it stores it, sends
:class:`~mesh.protocol.messages.Store` to the other nodes of the key's
preference list (the value moves to them as a chunked transfer), and once
every alive target acknowledged it the value is confirmed and the client is
told (:class:`~mesh.protocol.messages.Scattered`). The session holds the key
from then on, as it holds a task it submitted: its release (or the session's
end) frees the value on every node, through the release protocol.

The entry node subscribes to the key (so its holders keep it) without
fetching it: a key already held elsewhere is located, not sent. A scattered
key has no spec to run again; the client resubmits, on a reconnect or when
told the key is lost, a spec whose function raises
:class:`mesh._client_upload.ScatteredValueLost` if no holder has the value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh.exec._effects import Effect
from mesh.exec._records import Stored
from mesh.protocol import payload as P
from mesh.protocol.messages import Ack, Scattered, Store, Want

if TYPE_CHECKING:
    from mesh.exec._core import ExecCore
    from mesh.store import Value

__all__ = ["Scatters"]


class Scatters:
    """Scattered values this node coordinates, and the sessions to answer."""

    def __init__(self, core: ExecCore) -> None:
        self.core = core
        self.t = core.table
        self.waiting: dict[str, set[int]] = {}
        """Keys stored here for a client, not yet confirmed: the sessions to tell."""
        core.add_handlers({}, {Ack: self.on_ack})

    def put(self, sid: int, key: str, value: Value, replicas: int) -> list[Effect]:
        """Session ``sid`` uploaded ``value`` for ``key``: keep it on the key's
        nodes; the session holds the key."""
        t = self.t
        sess = t.sessions.get(sid)
        if sess is None:
            return []
        if key not in sess.keys:
            sess.keys.add(key)
            t.held.setdefault(key, set()).add(sid)
        me = t.name
        st = t.results.get(key)
        if st is None:
            r = replicas or t.replicas
            targets = list(t.ring.pref(key, r))
            st = Stored(P.OK_VALUE, value, {me}, targets, me, replicas=r)  # type: ignore[arg-type]
            st.acks.add(me)
            t.results[key] = st
            for n in targets:
                if n != me:
                    t.send(n, Store(key, P.OK_VALUE, value, targets, [me], me, False, r))  # type: ignore[arg-type]
            t.metrics.inc("exec_values_scattered")
            self.core.running.check_confirmed(key, st)
        elif me not in st.subs:  # the same value, held here already: keep it for us too
            st.subs.add(me)
            for n in t.ring.pref(key, st.replicas or t.replicas):
                if n != me:
                    t.send(n, Want(key, me, True))
        self.waiting.setdefault(key, set()).add(sid)
        self._answer()
        return self.core.flush()

    def refuse(self, sid: int, key: str, reason: str) -> list[Effect]:
        """Tell session ``sid`` its value of ``key`` was not kept."""
        self.t.to_client(sid, Scattered(key, reason))
        return self.core.flush()

    def on_ack(self, msg: Ack) -> None:
        self.core.holder.on_ack(msg)
        if msg.key in self.waiting:
            self._answer()

    def poll(self) -> list[Effect]:
        """Answer the sessions whose values were confirmed by a view change
        (a target that died acknowledges nothing): called on every tick."""
        if self.waiting:
            self._answer()
        return self.core.flush()

    def _answer(self) -> None:
        t = self.t
        for key in list(self.waiting):
            st = t.results.get(key)
            if st is not None and not st.confirmed:
                continue
            for sid in sorted(self.waiting.pop(key)):
                sess = t.sessions.get(sid)
                if sess is not None and key in sess.keys:
                    t.to_client(sid, Scattered(key, ""))
