"""The entry role of the actor core: a client's actor records, relayed.

A component of :class:`mesh.actors._core.ActorCore`, sans-IO. A client's
actor record is relayed (:class:`ActorRelay`) to the actor's host, the first
node of the actor key's preference list, and its answer (:class:`ActorReply`)
is delivered to every session that asked for it as a :class:`Done`. A relay
is sent again when its host leaves the view (durable calls), when its host
stayed silent for ``actor_resend`` seconds, or after 30 times that; after 10
times that of silence it goes to the next node of the list (whose view may
have seen the host die when ours did not); so does a relay that waited
``actor_resend`` for a host silent that long already. A volatile call whose
host died fails with :class:`~mesh.errors.ActorLost`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mesh.errors import ActorLost
from mesh.protocol import payload as P
from mesh.protocol.messages import ActorCall, ActorRelay, ActorReply, Done, ProtocolViolation


@dataclass(slots=True, eq=False)
class Relay:
    """A client's actor record this entry node waits on."""
    raw: list
    actor: str
    volatile: bool
    sids: set[int]
    host: str
    since: float
    asked: float = 0.0
    """When this relay went to its current target."""
    tries: int = 0
    """How many targets stayed silent: the relay goes to the next node of the list."""


class Entry:
    """Relays of the clients attached to this node."""

    def __init__(self, core: Any) -> None:
        self.x = core
        self.relays: dict[str, Relay] = {}
        self.heard: dict[str, float] = {}
        """When each host last answered one of our relays."""

    def client_message(self, sid: int, msg: Any, raw: list) -> None:
        """An actor record from a client session of this node."""
        rel = self.relays.get(msg.key)
        if rel is not None:
            rel.sids.add(sid)
            return
        t = self.x.t
        if len(self.relays) >= t.window * max(1, len(t.sessions)):
            raise ProtocolViolation("client sent more actor calls than its credit")
        volatile = type(msg) is ActorCall and not msg.durable
        now = self.x.now
        rel = self.relays[msg.key] = Relay(raw, msg.actor, volatile, {sid}, "", now, now)
        self.forward(rel)

    def forward(self, rel: Relay) -> None:
        pref = self.x.pref(rel.actor, self.x.t.replicas + 1)
        rel.since = self.x.now
        if not pref:
            return
        host = pref[rel.tries % len(pref)]
        if host != rel.host:
            rel.host, rel.asked = host, self.x.now
        if host != self.x.name:
            self.x.metrics.inc("actor_relays")  # a hop a call straight to its host saves
        self.x.send(host, ActorRelay(self.x.name, rel.raw))

    def on_reply(self, msg: ActorReply) -> None:
        rel = self.relays.pop(msg.key, None)
        if rel is None:
            return
        self.heard[rel.host] = self.x.now
        sessions = self.x.t.sessions
        for sid in sorted(rel.sids):
            if sid in sessions:
                if msg.kind == P.REMOTE:  # a large result, kept in the store
                    self.x.values.hold(sid, msg.key)
                self.x.t.to_client(sid, Done(msg.key, msg.kind, msg.payload))

    def view_changed(self) -> None:
        alive = self.x.alive()
        for rel in list(self.relays.values()):
            if rel.host in alive and rel.host:
                continue
            if rel.volatile:
                kind, payload = P.dumps_error(ActorLost(
                    f"the host of volatile actor {rel.actor!r} left; the actor starts again "
                    "from its constructor and this call is lost"))
                self.on_reply(ActorReply(rel.raw[1], kind, payload))
            else:
                self.forward(rel)

    def tick(self, now: float) -> None:
        sessions = self.x.t.sessions
        resend = self.x.resend
        for key, rel in list(self.relays.items()):
            if not any(s in sessions for s in rel.sids):
                del self.relays[key]
            elif (now - max(rel.asked, self.heard.get(rel.host, 0.0)) >= 10 * resend
                  or (now - self.heard.get(rel.host, now) >= 10 * resend
                      and now - rel.asked >= resend)):
                rel.tries += 1  # its target stayed silent (a view that missed a death?)
                self.forward(rel)
            elif (now - max(rel.since, self.heard.get(rel.host, 0.0)) >= resend
                  or now - rel.since >= 30 * resend):
                self.forward(rel)  # its host went silent, or this relay waited long: lost?
