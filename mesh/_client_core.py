"""The client's engine, shared by :class:`mesh.Client` and :class:`mesh.AsyncClient`.

It runs on one asyncio loop (a background thread's for the sync client, the
caller's for the async one) and keeps one channel to an entry node:

* Submissions are queued and sent in batches, one frame per burst, only
  while the client has credit (``window`` tasks in flight, granted by the
  node; each ``d`` result or ``c`` cancel acknowledgement returns one). A
  client that submits 100,000 tasks therefore waits in its own memory, and
  no node holds more than the window of its tasks.
* Results arrive in batches (``d``) and resolve every future of their key.
* If the channel breaks, the client reconnects to another node it knows
  (the node tells it the member addresses) and submits every live key again:
  holders of a result or a queued task re-attach to it, lost tasks run again.
  A key resolves at most once; a second result for it is ignored.

Code on the user's side of the thread boundary only touches shared state
under ``cond`` (a condition on a re-entrant lock, so a future collected by
the garbage collector in the middle of an update can still release itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mesh._client_future import CANCELLED, ERROR, FINISHED, LOST, PENDING, Future, KeyState
from mesh.errors import WireError
from mesh.exec import _payload as P
from mesh.exec._service import CLIENT_PATH, encode_frames
from mesh.runtime import Address, Channel, ChannelClosed, Runtime, Unreachable
from mesh.secrets import format_address, parse_address
from mesh.wire import Codec, Secrets

__all__ = ["ClientCore"]

log = logging.getLogger("mesh.client")

_FAILED = (P.ERROR, P.KILLED, P.FAILED)
KEEPALIVE_INTERVAL = 2.0
"""Seconds between pings to the entry node while tasks are pending."""
KEEPALIVE_TIMEOUT = 10.0
"""Seconds of silence from the entry node after which the client reconnects."""
_FN_CACHE = 128


class ClientCore:
    """Connection, credit, and key states of one client."""

    def __init__(self, addresses: Sequence[str], secret: Secrets, *, max_body: int,
                 connect_timeout: float, reconnect_timeout: float,
                 runtime: Runtime | None = None, client_id: str | None = None) -> None:
        self.addresses: list[Address] = [parse_address(a) for a in addresses]
        self.codec = Codec(secret, max_body, source=runtime)  # None: the host's clock
        self.max_body = max_body
        self.connect_timeout = connect_timeout
        self.reconnect_timeout = reconnect_timeout
        self.client_id = client_id or os.urandom(8).hex()
        self.cond = threading.Condition(threading.RLock())
        self.states: dict[str, KeyState] = {}
        self.inbox: deque[KeyState] = deque()
        self.unsent: deque[KeyState] = deque()
        self.releases: list[str] = []
        self.credit = 0
        self.node = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread: int | None = None
        self._kick: asyncio.Event | None = None
        self._wake_pending = False
        self._channel: Channel | None = None
        self._runtime: Any = runtime
        self._own_runtime = runtime is None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._last_rx = 0.0
        self._window = 0
        self._counter = itertools.count()
        self._fns: dict[int, tuple[Any, bytes, bytes, str]] = {}

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Connect (on the loop the core will live on)."""
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self._kick = asyncio.Event()
        if self._runtime is None:
            from mesh.realtime import RealRuntime

            self._runtime = RealRuntime(max_body=self.max_body)
        from mesh.wire._transport import SecureRuntime  # tokens and bound channels

        self._runtime = SecureRuntime(self._runtime, self.codec, unauth_body=0)
        try:
            await self._connect(self.addresses, self.connect_timeout)
        except BaseException:
            if self._own_runtime:
                await self._runtime.close()
            raise
        self._tasks.append(self.loop.create_task(self._writer()))
        self._tasks.append(self.loop.create_task(self._keepalive()))

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
        if self._own_runtime and self._runtime is not None:
            await self._runtime.close()
        with self.cond:
            for st in list(self.states.values()):
                if st.status == PENDING:
                    self._resolve(st, LOST, P.FAILED, b"the client was closed")
            self.cond.notify_all()

    async def _connect(self, addresses: list[Address], budget: float) -> None:
        """Connect to the first of ``addresses`` that answers, retrying for up
        to ``budget`` seconds; raises :class:`MeshUnavailable` otherwise."""
        from mesh.exec._errors import MeshUnavailable

        rt = self._runtime
        deadline = rt.now() + budget
        delay = 0.05
        last: BaseException | None = None
        while not self._closed:
            for addr in addresses:
                try:
                    ch = await self._runtime.connect(addr, CLIENT_PATH, self.connect_timeout)
                    await ch.send(self.codec.seal({"client": self.client_id}))
                    welcome = self.codec.open(await ch.recv())
                except (Unreachable, ChannelClosed, WireError) as exc:
                    last = exc
                    continue
                self._adopt(ch, welcome, addr)
                return
            if rt.now() + delay > deadline:
                names = ", ".join(format_address(a) for a in addresses)
                raise MeshUnavailable(
                    f"no mesh node answered at {names} within {budget:.0f} s (last error: "
                    f"{last}); check that the mesh runs and that the secret matches")
            await rt.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _adopt(self, ch: Channel, welcome: dict, addr: Address) -> None:
        self._channel = ch
        self.node = welcome.get("node", "")
        self._learn(welcome.get("members", []), first=addr)
        with self.cond:
            self.credit = self._window = int(welcome.get("window", 1))
            self._last_rx = self._runtime.now()
            # Submit every live key again, in creation order (dependencies first).
            self.unsent = deque(st for st in self.states.values()
                                if st.status == PENDING or st.refs > 0)
            for st in self.unsent:
                st.sent = False
            self.releases.clear()
        assert self.loop is not None
        self._tasks.append(self.loop.create_task(self._reader(ch)))
        self._wake()

    def _learn(self, members: list[str], first: Address | None = None) -> None:
        known = [parse_address(m) for m in members if isinstance(m, str)]
        merged = ([first] if first else []) + [a for a in known if a != first]
        merged += [a for a in self.addresses if a not in merged]
        self.addresses = merged

    # ------------------------------------------------------------ submitting
    def build(self, func: Callable[..., Any], calls: Iterable[tuple[tuple, dict]], *,
              pure: bool, retries: int, key: str | None = None) -> list[Future]:
        """Encode calls of ``func`` and queue them; returns one future each."""
        if not callable(func):
            raise TypeError(f"the first argument must be callable, not {type(func).__name__}")
        fn, fn_digest, name = self._function(func)
        items = []
        for args, kwargs in calls:
            akind, payload, dep_futs = P.dumps_args(args, kwargs)
            for f in dep_futs:
                if f._core is not self:
                    raise ValueError(f"future {f.key} belongs to another client")
            if len(payload) + len(fn) > self.max_body // 2:
                raise ValueError(
                    f"the arguments of {name} are {len(payload) + len(fn)} bytes pickled, more "
                    f"than half the frame limit ({self.max_body}); pass large data by "
                    "reference (a path or URL) instead")
            deps = [f.key for f in dep_futs]
            if key is not None:
                k = key
            elif pure:
                h = hashlib.blake2b(fn_digest, digest_size=16)
                h.update(bytes((akind,)))
                h.update(payload)
                k = f"{name}-{h.hexdigest()}"
            else:
                k = f"{name}-{self.client_id}-{next(self._counter)}"
            items.append((k, [fn, akind, payload, deps, retries], dep_futs))
        return self.add(items)

    def _function(self, func: Callable[..., Any]) -> tuple[bytes, bytes, str]:
        cached = self._fns.get(id(func))
        if cached is not None and cached[0] is func:
            return cached[1], cached[2], cached[3]
        fn = P.dumps_function(func)
        digest = hashlib.blake2b(fn, digest_size=16).digest()
        name = getattr(func, "__name__", type(func).__name__)
        if len(self._fns) >= _FN_CACHE:
            self._fns.pop(next(iter(self._fns)))
        self._fns[id(func)] = (func, fn, digest, name)
        return fn, digest, name

    def add(self, items: list[tuple[str, list, list[Future]]]) -> list[Future]:
        futures = []
        fresh = []
        with self.cond:
            for key, spec, deps in items:
                st = self.states.get(key)
                if st is None:
                    st = KeyState(key, spec, deps)
                    self.states[key] = st
                    fresh.append(st)
                futures.append(Future(st, self))
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
            inbox = self.inbox
            while inbox:
                self.unsent.append(inbox.popleft())
            ch = self._channel
            if ch is None:
                continue
            msgs: list = []
            with self.cond:
                if self.releases:
                    msgs = [["x", k] for k in self.releases]
                    self.releases = []
                unsent = self.unsent
                while unsent and self.credit > 0:
                    st = unsent.popleft()
                    if st.sent or st.refs <= 0 or st.status == CANCELLED:
                        continue
                    st.sent = True
                    self.credit -= 1
                    msgs.append(["s", st.key, *st.spec])
            if msgs:
                try:
                    for frame in encode_frames(self.codec, msgs, self.max_body):
                        await ch.send(frame)
                except ChannelClosed:
                    continue  # the reader notices and reconnects

    # ------------------------------------------------------------- receiving
    async def _reader(self, ch: Channel) -> None:
        try:
            while True:
                msgs = self.codec.open(await ch.recv())
                self._last_rx = self._runtime.now()
                self._on_messages(msgs)
        except (ChannelClosed, WireError) as exc:
            if self._closed or ch is not self._channel:
                return
            log.warning("lost the connection to node %s (%s); reconnecting", self.node, exc)
        self._channel = None
        await ch.close()
        self._tasks.append(asyncio.get_running_loop().create_task(self._reconnect()))

    async def _keepalive(self) -> None:
        """While tasks are pending, ping the node; a node that stays silent for
        ``KEEPALIVE_TIMEOUT`` seconds is taken for lost (a crashed machine or a
        partition closes no connection) and the client moves to another one."""
        rt = self._runtime
        while True:
            await rt.sleep(KEEPALIVE_INTERVAL)
            ch = self._channel
            if ch is None or self.credit >= self._window:  # nothing in flight
                self._last_rx = rt.now()
                continue
            if rt.now() - self._last_rx > KEEPALIVE_TIMEOUT:
                log.warning("node %s did not answer for %.0f s; reconnecting", self.node,
                            rt.now() - self._last_rx)
                await ch.close()  # the reader sees the end and reconnects
                continue
            with contextlib.suppress(ChannelClosed):
                await ch.send(self.codec.seal([["p"]]))

    async def _reconnect(self) -> None:
        from mesh.exec._errors import MeshUnavailable

        try:
            await self._connect(self.addresses[1:] + self.addresses[:1],
                                self.reconnect_timeout)
        except MeshUnavailable as exc:
            with self.cond:
                for st in list(self.states.values()):
                    if st.status == PENDING:
                        self._resolve(st, LOST, P.FAILED, str(exc).encode())
                self.cond.notify_all()

    def _on_messages(self, msgs: list) -> None:
        callbacks: list[Callable[[], None]] = []
        afuts: list[asyncio.Future[None]] = []
        credit = 0
        with self.cond:
            states = self.states
            for m in msgs:
                op = m[0]
                if op == "d":
                    credit += 1
                    st = states.get(m[1])
                    if st is not None and st.status == PENDING:
                        kind = m[2]
                        self._resolve(st, ERROR if kind in _FAILED else FINISHED, kind, m[3])
                        if st.callbacks:
                            callbacks.extend(st.callbacks)
                            st.callbacks = None
                        if st.afuts:
                            afuts.extend(st.afuts)
                            st.afuts = None
                elif op == "c":
                    credit += 1
                elif op == "p":
                    pass  # keepalive answer: receiving it was the point
                elif op == "m":
                    self._learn(m[1], first=self.addresses[0] if self.addresses else None)
            self.credit += credit
            self.cond.notify_all()
        for fut in afuts:
            if not fut.done():
                fut.set_result(None)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a user callback's bug must not stop result delivery
                log.exception("future callback failed")
        if credit and self.unsent:
            self._wake()

    def _resolve(self, st: KeyState, status: str, kind: int, payload: bytes) -> None:
        st.status = status
        st.kind = kind
        st.payload = payload
        st.deps = []

    # ------------------------------------------------------------- waiting
    def wait_states(self, states: Sequence[KeyState], timeout: float | None) -> None:
        """Block the calling thread until every state is done."""
        if threading.get_ident() == self.loop_thread:
            raise RuntimeError("result() would block the client's event loop; "
                               "use `await future` in async code")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            for st in states:
                while not st.done:
                    if deadline is None:
                        self.cond.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"task {st.key!r} did not finish within {timeout} s; it keeps "
                            "running, call result() again to keep waiting")
                    self.cond.wait(remaining)

    async def wait_async(self, st: KeyState) -> Any:
        """Wait for ``st`` on the client loop; its value (or raise its error)."""
        await self.wait_done(st)
        return st.value()

    async def wait_done(self, st: KeyState) -> None:
        """Wait until ``st`` is done, without looking at its outcome."""
        if not st.done:
            assert self.loop is not None
            fut = self.loop.create_future()
            with self.cond:
                if not st.done:
                    if st.afuts is None:
                        st.afuts = []
                    st.afuts.append(fut)
                else:
                    fut.set_result(None)
            await fut

    def on_done(self, st: KeyState, cb: Callable[[], None]) -> None:
        with self.cond:
            if not st.done:
                if st.callbacks is None:
                    st.callbacks = []
                st.callbacks.append(cb)
                return
        cb()

    # ----------------------------------------------------- release / cancel
    def unref(self, st: KeyState) -> None:
        with self.cond:
            st.refs -= 1
            if st.refs > 0:
                return
            if self.states.get(st.key) is st:
                del self.states[st.key]
            if st.sent and st.status != CANCELLED:
                self.releases.append(st.key)
        self._wake()

    def cancel(self, st: KeyState) -> bool:
        callbacks: list[Callable[[], None]] = []
        with self.cond:
            if st.status == CANCELLED:
                return True
            if st.done:
                return False
            self._resolve(st, CANCELLED, P.FAILED, b"")
            callbacks = st.callbacks or []
            st.callbacks = None
            afuts, st.afuts = st.afuts or [], None
            if self.states.get(st.key) is st:
                del self.states[st.key]
            if st.sent:
                self.releases.append(st.key)
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
