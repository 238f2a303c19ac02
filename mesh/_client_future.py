"""Futures of the mesh client and the per-key state behind them.

A :class:`Future` is a handle on one task key. Several futures may share a key
(``pure=True`` tasks with equal inputs); they share one :class:`KeyState`.
States are resolved on the client's event loop; waiting works from any thread
(``result()``) or from the loop (``await future``). The result is decoded on
each access, so every caller gets its own copy and its own exception object.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mesh.errors import KilledWorker, MeshUnavailable, TaskFailed
from mesh.protocol import payload as P

if TYPE_CHECKING:
    from mesh._client_core import ClientCore

__all__ = ["Future", "KeyState", "as_completed"]

PENDING, FINISHED, ERROR, CANCELLED, LOST = "pending", "finished", "error", "cancelled", "lost"


class KeyState:
    """What the client knows about one key. Mutated on the client loop only,
    under the core's condition lock."""

    __slots__ = ("afuts", "callbacks", "deps", "fetch", "key", "kind", "payload", "publish",
                 "refs", "sent", "spec", "status")

    def __init__(self, key: str, spec: list, deps: list[KeyState]) -> None:
        self.key = key
        self.spec = spec
        self.deps = deps  # keeps dependency keys alive while this one is pending
        self.status = PENDING
        self.kind = -1
        self.payload = b""
        self.refs = 0
        self.sent = False
        self.publish = False  # an actor call's outcome, stored on the mesh (mesh.actors)
        self.callbacks: list[Callable[[], None]] | None = None
        self.afuts: list[asyncio.Future[None]] | None = None
        self.fetch = 0
        """For a ``REMOTE`` result: 1 once its value is wanted, 2 once asked for."""

    @property
    def remote(self) -> bool:
        """Done, with its value still on the mesh (fetched when wanted)."""
        return self.kind == P.REMOTE

    @property
    def done(self) -> bool:
        return self.status != PENDING

    def value(self) -> Any:
        """The result, or raise the task's error."""
        st = self.status
        if st == FINISHED:
            if self.kind == P.REMOTE:
                raise RuntimeError(f"mesh: the value of {self.key!r} was not fetched; "
                                   "this is a bug in mesh's client")
            if self.kind == P.OK_VALUE:  # a value streamed in chunks (mesh.store)
                from mesh.store import loads

                return loads(self.payload.header, self.payload.buffers)  # type: ignore[attr-defined]
            return P.loads_value(self.kind, self.payload)
        if st == CANCELLED:
            raise concurrent.futures.CancelledError(f"task {self.key!r} was cancelled")
        raise self.error()

    def error(self) -> BaseException | None:
        st = self.status
        if st in (FINISHED, PENDING):
            return None
        if st == CANCELLED:
            return concurrent.futures.CancelledError(f"task {self.key!r} was cancelled")
        if st == LOST:
            return MeshUnavailable(self.payload.decode())
        if self.kind == P.ERROR:
            return P.load_error(self.payload)
        if self.kind == P.KILLED:
            return KilledWorker(self.payload.decode())
        return TaskFailed(self.payload.decode(errors="replace"))


class Future:
    """The eventual result of a task on the mesh.

    ``result(timeout)`` blocks (from a thread other than the client's loop);
    ``await future`` gives the result in async code. A future keeps its
    result alive on the mesh until it is released (explicitly, or when the
    last future of its key is garbage collected).
    """

    _mesh_future_ = True
    __slots__ = ("__weakref__", "_core", "_released", "_state", "key")

    def __init__(self, state: KeyState, core: ClientCore) -> None:
        self.key = state.key
        self._state = state
        self._core = core
        self._released = False
        state.refs += 1

    def __repr__(self) -> str:
        return f"<mesh.Future {self.key} {self.status}>"

    def __reduce__(self) -> Any:
        raise TypeError("mesh futures can only be passed as task arguments on the same client")

    @property
    def status(self) -> str:
        """``pending``, ``finished``, ``error``, ``cancelled`` or ``lost``."""
        return self._state.status

    def done(self) -> bool:
        return self._state.done

    def cancelled(self) -> bool:
        return self._state.status == CANCELLED

    def result(self, timeout: float | None = None) -> Any:
        """The task's return value. Re-raises the task's exception (with the
        remote traceback as its cause), :class:`~mesh.KilledWorker`,
        ``CancelledError``, or ``TimeoutError`` after ``timeout`` seconds."""
        st = self._state
        if not st.done or st.remote:
            self._core.waits.wait_states([st], timeout, values=True)
        return st.value()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if not self._state.done:
            self._core.waits.wait_states([self._state], timeout)
        return self._state.error()

    def cancel(self) -> bool:
        """Stop waiting for the task and release it; it is dropped from the mesh
        if nobody else wants it. False if it already finished."""
        return self._core.cancel(self._state)

    def add_done_callback(self, fn: Callable[[Future], None]) -> None:
        """Call ``fn(self)`` once done (on the client's loop thread)."""
        self._core.waits.on_done(self._state, lambda: fn(self))

    def release(self) -> None:
        """Let the mesh forget this future's result (done automatically when
        the future is garbage collected)."""
        if not self._released:
            self._released = True
            self._core.unref(self._state)

    def __del__(self) -> None:
        if not self._released:
            self._released = True
            # At interpreter shutdown or after close the loop is gone: nothing to release.
            with contextlib.suppress(RuntimeError):
                self._core.unref(self._state)

    def __await__(self) -> Any:
        # A generator, so the future (and its claim on the result) stays alive
        # while it is awaited, even as a temporary: ``await client.submit(...)``.
        return (yield from self._core.waits.wait_async(self._state).__await__())


class as_completed:
    """Iterate over futures in the order they finish, from a thread
    (``for f in as_completed(fs)``) or from async code (``async for``)."""

    def __init__(self, futures: Iterable[Future], timeout: float | None = None) -> None:
        self._futures = list(futures)
        self._timeout = timeout

    def __iter__(self) -> Iterator[Future]:
        q: queue.SimpleQueue[Future] = queue.SimpleQueue()
        for f in self._futures:
            f._core.waits.on_done(f._state, lambda f=f: q.put(f))
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        for _ in range(len(self._futures)):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                yield q.get(timeout=remaining)
            except queue.Empty:
                raise TimeoutError(f"as_completed: not all futures finished within "
                                   f"{self._timeout} s") from None

    async def _aiter(self) -> AsyncIterator[Future]:
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[Future] = asyncio.Queue()
        for f in self._futures:
            f._core.waits.on_done(f._state, lambda f=f: loop.call_soon_threadsafe(q.put_nowait, f))
        for _ in range(len(self._futures)):
            if self._timeout is None:
                yield await q.get()
            else:
                yield await asyncio.wait_for(q.get(), self._timeout)

    def __aiter__(self) -> AsyncIterator[Future]:
        return self._aiter()
