"""Actor calls sent straight to the actor's host (the client side).

Ray's caller talks to the actor's worker directly; a mesh client does the
same with the actor's host node. It learns where an actor lives from the
answer of its open or find (``{"host", "address"}``) and sends its handles'
calls on a session of their own to that node (a :class:`Route`), so a call
costs no forwarding hop. The node on the other end is an entry like any: if
it no longer hosts the actor (the view changed), it relays the call to the
host of its view, as the client's own node would.

* **Order and exactly once.** A durable host applies each caller's calls in
  sequence order, whatever session they came on (an early one waits for the
  gap), and answers a call sent again from its record. A volatile host takes
  calls as they come, so a volatile handle changes route only when none of
  its calls is unresolved. Calls whose values are futures go through the
  client's own node, whose session holds those keys.
* **A route that breaks** (its node died, a partition, a refused connect,
  ``Config.actor_route_timeout`` of silence while calls wait on it):
  its unresolved calls go to the client's own node, in the order made, as
  every call did before routes; the client asks where the actor is now
  (``ActorFind``) and later calls go to the new host once it answers. The
  node is not tried again until the view changes.
* **The view changes** (the node sends ``Members``): the client asks again
  where each actor it routes lives.

Everything here runs on the client's loop or under the core's condition
lock, as :class:`mesh._client_core.ClientCore` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from mesh._client_future import FINISHED, PENDING, Future, KeyState
from mesh._client_protocol import ClientProtocol
from mesh.addresses import parse_address
from mesh.config import DEFAULT
from mesh.errors import WireError
from mesh.protocol import payload as P
from mesh.protocol.framing import CLIENT_PATH, encode_frames, pack
from mesh.protocol.messages import (
    ActorPublish,
    Done,
    Members,
    Ping,
    ProtocolViolation,
    decode_client_reply,
    encode,
)
from mesh.runtime import Address, Channel, ChannelClosed, Unreachable
from mesh.store._channel import CONTROL_FRAME, is_chunk_frame
from mesh.wire import unpack

if TYPE_CHECKING:
    from mesh._client_core import ClientCore

__all__ = ["Direct", "Route"]

log = logging.getLogger("mesh.client")


class Route:
    """A session to one node that hosts actors this client calls."""

    __slots__ = ("addr", "channel", "dead", "kick", "node", "pending", "proto", "tasks",
                 "waking")

    def __init__(self, node: str, addr: Address, core: ClientCore) -> None:
        self.node = node
        self.addr = addr
        self.proto = ClientProtocol([addr], core.client_id, core.max_body)
        self.proto.states = core.proto.states  # one client, one set of keys
        self.channel: Channel | None = None
        self.dead = False
        self.pending: dict[str, KeyState] = {}
        """Calls queued or sent on this route and not resolved, in the order made."""
        self.kick: asyncio.Event | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.waking = False


class Direct:
    """Where the actors this client calls live, and the routes to them."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core
        self.hosts: dict[str, tuple[str, str]] = {}
        """Per actor, its host's name and address, as last answered."""
        self.routes: dict[str, Route] = {}
        self.finding: set[str] = set()
        self.refused: set[str] = set()
        """Nodes whose route broke: not tried again until the view changes."""
        self.closed = False

    # --------------------------------------------------------------- where
    def learn(self, actor: str, info: Any) -> None:
        """The answer of an actor's open or find: ``{"host", "address"}``."""
        if not isinstance(info, dict):
            return
        host, addr = info.get("host"), info.get("address")
        if type(host) is str and type(addr) is str and host and addr:
            with self.core.cond:
                self.hosts[actor] = (host, addr)

    def forget(self, actor: str) -> None:
        """``actor`` was closed: route nothing to it any more."""
        with self.core.cond:
            self.hosts.pop(actor, None)

    def hint(self, actor: str) -> tuple[str, str] | None:
        return self.hosts.get(actor)

    def find(self, actor: str) -> None:
        """Ask where ``actor`` lives now (through the client's own node)."""
        from mesh.actors._handle import find_msg, send

        with self.core.cond:
            if actor in self.finding or self.closed:
                return
            self.finding.add(actor)
        fut = send(self.core, find_msg(self.core, actor))
        fut.add_done_callback(lambda f: self._found(actor, f))

    def _found(self, actor: str, fut: Future) -> None:
        st = fut._state
        with self.core.cond:
            self.finding.discard(actor)
            if st.status != FINISHED:  # closed, or lost: nothing to route to
                self.hosts.pop(actor, None)
                return
        with contextlib.suppress(Exception):  # a node's odd answer: keep the old route
            self.learn(actor, st.value())

    def view_changed(self) -> None:
        """The members changed: hosts may have moved."""
        with self.core.cond:
            self.refused.clear()
            actors = sorted(self.hosts)
        for actor in actors:
            self.find(actor)

    # ---------------------------------------------------------------- calls
    def route(self, actor: str) -> Route | None:
        """The live route to ``actor``'s host, or None: the client's own
        node (under the core's lock)."""
        got = self.hosts.get(actor)
        if got is None or self.closed:
            return None
        node, addr = got
        if node == self.core.node or node in self.refused:
            return None
        r = self.routes.get(node)
        if r is not None and not r.dead:
            return r
        try:
            address = parse_address(addr)
        except ValueError:
            return None
        r = self.routes[node] = Route(node, address, self.core)
        self._soon(lambda: (self._spawn(r, self._open(r)), self._spawn(r, self._deadline(r))))
        return r

    def add(self, handle: Any, key: str, msg: Any, deps: list[Future], busy: bool) -> Future:
        """Queue ``handle``'s call ``msg``: straight to the host if a route
        to it is known, else through the client's own node. ``busy``: the
        handle has calls unresolved (a volatile handle keeps their route)."""
        core = self.core
        with core.cond:
            r = None if deps else self.route(msg.actor)
            if busy and not handle._durable and r is not handle._via:
                via = handle._via
                r = via if via is not None and not via.dead else None
            handle._via = r
            if r is None:
                return core.add([(key, msg, deps)])[0]
            st, new = core.proto.state(key, msg, [])
            fut = Future(st, core)
            if new:
                r.pending[key] = st
                r.proto.unsent.append(st)
        self._wake(r)
        return fut

    def reclaim(self) -> None:
        """The client's own session reconnected and queued every live key
        again: not those on a live route (under the core's lock)."""
        mine = {k for r in self.routes.values() if not r.dead for k in r.pending}
        if mine:
            proto = self.core.proto
            proto.unsent = deque(st for st in proto.unsent if st.key not in mine)

    # ------------------------------------------------------------ plumbing
    def _soon(self, fn: Any) -> None:
        loop = self.core.loop
        if loop is None:
            return
        if threading.get_ident() == self.core.loop_thread:
            fn()
        else:
            loop.call_soon_threadsafe(fn)

    def _spawn(self, r: Route, coro: Any) -> None:
        if r.dead or self.closed:
            coro.close()
            return
        assert self.core.loop is not None
        r.tasks.append(self.core.loop.create_task(coro))

    def _wake(self, r: Route) -> None:
        if r.waking or r.kick is None:
            return
        r.waking = True
        kick = r.kick
        self._soon(kick.set)

    async def _open(self, r: Route) -> None:
        core = self.core
        rt = core._runtime
        try:
            ch = await rt.connect(r.addr, CLIENT_PATH,
                                  min(core.connect_timeout, DEFAULT.actor_route_timeout))
            await ch.send(pack({"client": core.client_id}))
            welcome = unpack(await ch.recv())
        except (Unreachable, ChannelClosed, WireError) as exc:
            self._fail(r, exc)
            return
        if not isinstance(welcome, dict) or welcome.get("node") != r.node or r.dead:
            await ch.close()
            self._fail(r, "another node answers at its address")
            return
        with core.cond:
            r.channel = ch
            r.proto.credit = r.proto.window = max(1, int(welcome.get("window", 1)))
            r.proto.last_rx = rt.now()
        r.kick = asyncio.Event()
        r.kick.set()
        for coro in (self._writer(r, ch), self._reader(r, ch), self._keepalive(r, ch)):
            self._spawn(r, coro)

    async def _deadline(self, r: Route) -> None:
        """A node that does not let us in within the route timeout (paused,
        cut off): its calls go through the client's own node."""
        await self.core._runtime.sleep(DEFAULT.actor_route_timeout)
        if r.channel is None:
            self._fail(r, "its node did not let us in")

    async def _writer(self, r: Route, ch: Channel) -> None:
        assert r.kick is not None
        while True:
            await r.kick.wait()
            r.kick.clear()
            r.waking = False
            with self.core.cond:
                msgs = r.proto.outgoing()
            try:
                for body in encode_frames(msgs, self.core.max_body):
                    await ch.send(body)
            except ChannelClosed as exc:
                self._fail(r, exc)
                return

    async def _reader(self, r: Route, ch: Channel) -> None:
        core = self.core
        try:
            while True:
                raw = await ch.recv()
                if is_chunk_frame(raw):
                    raise ProtocolViolation("a value streamed on an actor route")
                frame = unpack(raw)
                if type(frame) is not list or (frame and frame[0] == CONTROL_FRAME):
                    raise ProtocolViolation("an actor route's frame must be a list of messages")
                msgs = [decode_client_reply(m) for m in frame if m]
                msgs = self._remote(r, msgs)
                core._on_messages([m for m in msgs if type(m) is not Members], r.proto)
                self._answered(r)
        except (ChannelClosed, WireError, ProtocolViolation) as exc:
            self._fail(r, exc)

    def _remote(self, r: Route, msgs: list) -> list:
        """A large result (``REMOTE``) is fetched through the client's own
        session, which streams values: the call goes there again, is
        answered from the host's record, and that session holds the key.
        This route lets go of its hold."""
        if not any(type(m) is Done and m.kind == P.REMOTE for m in msgs):
            return msgs
        core = self.core
        keep = []
        with core.cond:
            for m in msgs:
                if type(m) is not Done or m.kind != P.REMOTE:
                    keep.append(m)
                    continue
                r.proto.credit += 1
                r.proto.releases.append(m.key)
                st = r.pending.pop(m.key, None)
                if st is not None and st.status == PENDING:
                    st.sent = False
                    core.proto.unsent.append(st)
        core._wake()
        self._wake(r)
        return keep

    def _answered(self, r: Route) -> None:
        """After answers: forget resolved calls; an outcome to publish goes
        through the client's own session (which holds published keys)."""
        core = self.core
        wake = False
        with core.cond:
            proto = r.proto
            if any(type(st.spec) is ActorPublish for st in proto.unsent):
                core.proto.unsent.extend(st for st in proto.unsent
                                         if type(st.spec) is ActorPublish)
                proto.unsent = deque(st for st in proto.unsent
                                     if type(st.spec) is not ActorPublish)
                wake = True
            for key in [k for k, st in r.pending.items() if st.status != PENDING]:
                del r.pending[key]
            more = proto.credit > 0 and bool(proto.unsent)
        if wake:
            core._wake()
        if more:
            self._wake(r)

    async def _keepalive(self, r: Route, ch: Channel) -> None:
        rt = self.core._runtime
        timeout = DEFAULT.actor_route_timeout
        while True:
            await rt.sleep(timeout / 3)
            with self.core.cond:
                action = r.proto.keepalive(rt.now(), True, timeout)
            if action == "reconnect":
                self._fail(r, "its node did not answer")
                return
            if action == "ping":
                try:
                    await ch.send(pack([encode(Ping())]))
                except ChannelClosed as exc:
                    self._fail(r, exc)
                    return

    def _fail(self, r: Route, why: object) -> None:
        """The route broke: its unresolved calls go through the client's own
        node, in the order made; ask where its actors live now."""
        if r.dead:
            return
        core = self.core
        with core.cond:
            r.dead = True
            if self.routes.get(r.node) is r:
                del self.routes[r.node]
            if not self.closed:
                self.refused.add(r.node)
                log.info("actor route to node %s broke (%s); calling through node %s",
                         r.node, why, core.node)
            moved = [st for st in r.pending.values() if st.status == PENDING and st.refs > 0]
            r.pending.clear()
            for st in moved:
                st.sent = False
            core.proto.unsent.extend(moved)
            actors = sorted(a for a, (n, _) in self.hosts.items() if n == r.node)
            for actor in actors:
                del self.hosts[actor]
        if moved:
            core._wake()
        me = asyncio.current_task()
        for task in r.tasks:
            if task is not me:
                task.cancel()
        if r.channel is not None and core.loop is not None:
            core.loop.create_task(r.channel.close())
        if not self.closed:
            for actor in actors:
                self.find(actor)

    async def close(self) -> None:
        self.closed = True
        routes = list(self.routes.values())
        tasks = []
        for r in routes:
            self._fail(r, "the client closed")
            tasks += r.tasks
        await asyncio.gather(*tasks, return_exceptions=True)
