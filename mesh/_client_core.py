"""The client's asyncio driver, shared by :class:`mesh.Client` and
:class:`mesh.AsyncClient`.

It runs on one asyncio loop (a background thread's for the sync client, the
caller's for the async one), keeps one channel to an entry node and carries
out what the sans-IO :class:`~mesh._client_protocol.ClientProtocol` decides:

* Submissions are queued and sent in batches, one frame per burst, only
  while the client has credit (``window`` tasks in flight, granted by the
  node; each ``Done`` result returns one). A client that submits 100,000
  tasks therefore waits in its own memory, and no node holds more than the
  window of its tasks.
* Results arrive in batches and resolve every future of their key.
* If the channel breaks, the client reconnects to another node it knows
  (the node tells it the member addresses) and submits every live key again.

The bridge to the user's threads is here too: code on the user's side only
touches shared state under ``cond`` (a condition on a re-entrant lock, so a
future collected by the garbage collector in the middle of an update can
still release itself), and :meth:`ClientCore.wait_states` blocks a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mesh._client_future import CANCELLED, LOST, Future, KeyState
from mesh._client_protocol import ClientProtocol, check_call_options
from mesh._client_scatter import Scatterer
from mesh._client_wait import Waits
from mesh.addresses import format_address, parse_address
from mesh.config import DEFAULT
from mesh.errors import MeshUnavailable, WireError
from mesh.protocol.framing import CLIENT_PATH, encode_frames, pack
from mesh.protocol.messages import Members, Ping, ProtocolViolation, decode_client_reply, encode
from mesh.runtime import Address, Channel, ChannelClosed, Runtime, Unreachable
from mesh.store._channel import CONTROL_FRAME, is_chunk_frame
from mesh.store._fetch import values_inbound
from mesh.wire import Codec, Secrets, unpack

__all__ = ["ClientCore", "check_call_options"]

log = logging.getLogger("mesh.client")

KEEPALIVE_INTERVAL = DEFAULT.client_keepalive_interval
KEEPALIVE_TIMEOUT = DEFAULT.client_keepalive_timeout


class ClientCore:
    """Connection, threads and waiting for one client's protocol."""

    def __init__(self, addresses: Sequence[str], secret: Secrets, *, max_body: int,
                 connect_timeout: float, reconnect_timeout: float,
                 runtime: Runtime | None = None, client_id: str | None = None) -> None:
        if runtime is None:
            from mesh.realtime import RealRuntime

            runtime = RealRuntime(max_body=max_body)
            self._own_runtime = True
        else:
            self._own_runtime = False
        self._runtime: Any = runtime
        self.proto = ClientProtocol([parse_address(a) for a in addresses],
                                    client_id or f"{runtime.rng.getrandbits(64):016x}", max_body)
        self.codec = Codec(secret, max_body, source=runtime)
        self.max_body = max_body
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.cond = threading.Condition(threading.RLock())
        self.waits = Waits(self)
        self.inbox: deque[KeyState] = deque()
        self.node = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self._kick: asyncio.Event | None = None
        self._wake_pending = False
        self._channel: Channel | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._control: list = []
        """Credits and cancels for the values the node streams to us."""
        self._values: Any = None
        self.scatter = Scatterer(self)
        """Values this client sends (``Client.scatter``, large arguments)."""
        from mesh.actors._direct import Direct

        self.direct = Direct(self)
        """Routes of actor calls straight to their hosts (:mod:`mesh.actors._direct`)."""

    @property
    def addresses(self) -> list[Address]:
        return self.proto.addresses

    @property
    def client_id(self) -> str:
        return self.proto.client_id

    @property
    def unsent(self) -> deque[KeyState]:
        return self.proto.unsent

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Connect (on the loop the core will live on)."""
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self._kick = asyncio.Event()
        from mesh.wire._transport import SecureRuntime  # tokens and bound channels

        self._runtime = SecureRuntime(self._runtime, self.codec, unauth_body=0)
        self._values = values_inbound(self._runtime, self._on_messages, self._send_control)
        try:
            await self._connect(self.proto.addresses, self.connect_timeout)
        except BaseException:
            if self._own_runtime:
                await self._runtime.close()
            raise
        self._tasks.append(self.loop.create_task(self._writer()))
        self._tasks.append(self.loop.create_task(self._keepalive()))

    async def close(self) -> None:
        self._closed = True
        await self.direct.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
        if self._own_runtime:
            await self._runtime.close()
        with self.cond:
            self.proto.fail_pending(LOST, b"the client was closed")
            self.cond.notify_all()

    async def _connect(self, addresses: list[Address], budget: float) -> None:
        """Connect to the first of ``addresses`` that answers, retrying for up
        to ``budget`` seconds; raises :class:`MeshUnavailable` otherwise."""
        rt = self._runtime
        deadline = rt.now() + budget
        delay = 0.05
        last: BaseException | None = None
        while not self._closed:
            for addr in addresses:
                try:
                    ch = await rt.connect(addr, CLIENT_PATH, self.connect_timeout)
                    await ch.send(pack({"client": self.proto.client_id}))
                    welcome = unpack(await ch.recv())
                except (Unreachable, ChannelClosed, WireError) as exc:
                    last = exc
                    continue
                self._channel = ch
                self.node = welcome.get("node", "") if isinstance(welcome, dict) else ""
                with self.cond:
                    self.proto.connected(welcome if isinstance(welcome, dict) else {}, addr,
                                         rt.now())
                    self.direct.reclaim()  # calls on a live actor route stay there
                self._control.extend(self.scatter.connected(welcome))
                assert self.loop is not None
                self._tasks.append(self.loop.create_task(self._reader(ch)))
                self._wake()
                return
            if rt.now() + delay > deadline:
                names = ", ".join(format_address(a) for a in addresses)
                raise MeshUnavailable(
                    f"no mesh node answered at {names} within {budget:.0f} s (last error: "
                    f"{last}); check that the mesh runs and that the secret matches")
            await rt.sleep(delay)
            delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------ submitting
    def build(self, func: Callable[..., Any], calls: Iterable[tuple[tuple, dict]], *,
              pure: bool, retries: int, key: str | None = None,
              replicas: int | None = None, workers: object = None) -> list[Future]:
        """Encode calls of ``func`` and queue them; returns one future each."""
        items = self.proto.build(func, self.scatter.large_args(calls), pure=pure,
                                 retries=retries, key=key, own=lambda f: f._core is self,
                                 replicas=replicas, workers=workers)
        return self.add(items)

    def add(self, items: list[tuple[str, list, list[Future]]]) -> list[Future]:
        futures = []
        fresh = []
        with self.cond:
            for key, spec, deps in items:
                st, new = self.proto.state(key, spec, deps)
                if new:
                    fresh.append(st)
                    for dep in deps:  # an actor call's future as an argument
                        if type(dep._state.spec) is not list:
                            self.proto.publish(dep._state)
                futures.append(Future(st, self))
            if fresh and self.proto.uploading:  # some wait for a value on its way
                fresh = self.scatter.park(fresh)
        if fresh:
            self.inbox.extend(fresh)
            self._wake()
        return futures

    def _wake(self) -> None:
        if self._wake_pending or self.loop is None:
            return
        self._wake_pending = True
        if threading.get_ident() == self.loop_thread:
            assert self._kick is not None
            self._kick.set()
        else:
            self.loop.call_soon_threadsafe(self._kick.set)  # type: ignore[union-attr]

    async def _writer(self) -> None:
        assert self._kick is not None
        while True:
            await self._kick.wait()
            self._kick.clear()
            self._wake_pending = False
            try:
                while await self._send_some():
                    pass  # one chunk of an upload between batches of messages
            except ChannelClosed:
                continue  # the reader notices and reconnects

    async def _send_some(self) -> bool:
        """Send the waiting messages, then one chunk; True if a chunk went."""
        inbox = self.inbox
        while inbox:
            self.proto.unsent.append(inbox.popleft())
        ch = self._channel
        if ch is None:
            return False
        with self.cond:
            msgs = self.proto.outgoing()
        ctl, self._control = self._control, []
        ctl += self.scatter.offers()
        if ctl:
            await ch.send(pack([CONTROL_FRAME, *ctl]))
        if msgs:
            for body in encode_frames(msgs, self.max_body):
                await ch.send(body)
        return await self.scatter.send_chunk(ch)

    # ------------------------------------------------------------- receiving
    async def _reader(self, ch: Channel) -> None:
        try:
            node = self.node
            while True:
                raw = await ch.recv()
                if is_chunk_frame(raw):
                    await self._values.on_chunk(node, raw)
                    continue
                frame = unpack(raw)
                if type(frame) is not list:
                    raise ProtocolViolation("a frame from the node must be a list of messages")
                if frame and frame[0] == CONTROL_FRAME:
                    await self.scatter.control_frame(self._values, node, frame)
                    continue
                self._on_messages([decode_client_reply(m) for m in frame])
        except (ChannelClosed, WireError, ProtocolViolation) as exc:
            self._values.source_gone(node)  # a value cut off comes again from the next node
            if self._closed or ch is not self._channel:
                return
            log.warning("lost the connection to node %s (%s); reconnecting", self.node, exc)
        self._channel = None
        await ch.close()
        self._tasks.append(asyncio.get_running_loop().create_task(self._reconnect()))

    async def _keepalive(self) -> None:
        """While tasks are pending, ping the node; move to another node when
        the protocol says this one stayed silent too long."""
        rt = self._runtime
        while True:
            await rt.sleep(KEEPALIVE_INTERVAL)
            ch = self._channel
            with self.cond:
                action = self.proto.keepalive(rt.now(), ch is not None, KEEPALIVE_TIMEOUT)
            if action == "reconnect" and ch is not None:
                log.warning("node %s did not answer for %.0f s; reconnecting", self.node,
                            rt.now() - self.proto.last_rx)
                await ch.close()  # the reader sees the end and reconnects
            elif action == "ping" and ch is not None:
                with contextlib.suppress(ChannelClosed):
                    await ch.send(pack([encode(Ping())]))

    async def _reconnect(self) -> None:
        addrs = self.proto.addresses
        try:
            await self._connect(addrs[1:] + addrs[:1], self.reconnect_timeout)
        except MeshUnavailable as exc:
            with self.cond:
                self.proto.fail_pending(LOST, str(exc).encode())
                self.cond.notify_all()

    def _send_control(self, _node: str, raw: list) -> None:
        self._control.append(raw)
        self._wake()

    def _on_messages(self, msgs: list, proto: ClientProtocol | None = None) -> None:
        """Records from the node (``proto``: an actor route's session,
        :mod:`mesh.actors._direct`, rather than the client's own)."""
        callbacks: list[Callable[[], None]] = []
        afuts: list[asyncio.Future[None]] = []
        route = proto is not None
        if proto is None:
            proto = self.proto
            if any(type(m) is Members for m in msgs):
                self.direct.view_changed()  # actors may have moved
        with self.cond:
            finished = proto.received(msgs, self._runtime.now())
            if self.proto.scattered:
                finished += self.scatter.answered()
            for st in finished:
                if st.callbacks:
                    callbacks.extend(st.callbacks)
                    st.callbacks = None
                if st.afuts:
                    afuts.extend(st.afuts)
                    st.afuts = None
            self.cond.notify_all()
        for fut in afuts:
            if not fut.done():
                fut.set_result(None)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a user callback's bug must not stop result delivery
                log.exception("future callback failed")
        if not route and self.proto.credit and (self.proto.unsent or self.proto.fetches):
            self._wake()

    # ----------------------------------------------------- release / cancel
    def unref(self, st: KeyState) -> None:
        with self.cond:
            self.proto.unref(st)
        self._wake()

    def cancel(self, st: KeyState) -> bool:
        with self.cond:
            was = st.status
            if not self.proto.cancel(st):
                return False
            if was == CANCELLED:
                return True
            callbacks = st.callbacks or []
            st.callbacks = None
            afuts, st.afuts = st.afuts or [], None
            self.cond.notify_all()
        if self.loop is not None:
            for fut in afuts:
                self.loop.call_soon_threadsafe(_set_done, fut)
        for cb in callbacks:
            cb()
        self._wake()
        return True


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
