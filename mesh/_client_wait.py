"""Waiting for keys: the bridge from a user's thread or coroutine to the
client's loop (:class:`Waits`), and fetching the values of results kept on the
mesh (``REMOTE``) when they are wanted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mesh._client_future import KeyState

if TYPE_CHECKING:
    from mesh._client_core import ClientCore

__all__ = ["Waits"]


class Waits:
    """How the users of one :class:`~mesh._client_core.ClientCore` wait for
    its keys (``result()``, ``gather``, ``await``, callbacks)."""

    def __init__(self, core: ClientCore) -> None:
        self.core = core

    def wait_states(self, states: Sequence[KeyState], timeout: float | None,
                    values: bool = False) -> None:
        """Block the calling (user) thread until every state is done and,
        with ``values``, until the values of ``REMOTE`` results arrived (all
        asked for at once). The user's thread lives in real time, so its
        deadline does too."""
        if threading.get_ident() == self.core.loop_thread:
            raise RuntimeError("result() would block the client's event loop; "
                               "use `await future` in async code")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.core.cond:
            self._wait(states, lambda st: not st.done, deadline, timeout)
            if values:
                self.want_values(states)
                self._wait(states, lambda st: st.remote, deadline, timeout)

    def _wait(self, states: Sequence[KeyState], waiting: Callable[[KeyState], bool],
              deadline: float | None, timeout: float | None) -> None:
        for st in states:
            while waiting(st):
                if deadline is None:
                    self.core.cond.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"task {st.key!r} did not finish within {timeout} s; it keeps "
                        "running, call result() again to keep waiting")
                self.core.cond.wait(remaining)

    def want_values(self, states: Sequence[KeyState]) -> None:
        """Ask for the values of the ``REMOTE`` results among ``states``."""
        with self.core.cond:
            asked = [self.core.proto.want(st) for st in states if st.remote]
        if any(asked):
            self.core._wake()

    async def wait_async(self, st: KeyState) -> Any:
        """Wait for ``st`` on the client loop; its value (or raise its error)."""
        await self.wait_done(st)
        if st.remote:
            await self.wait_values([st])
        return st.value()

    async def wait_values(self, states: Sequence[KeyState]) -> None:
        """Fetch the values of the done ``REMOTE`` results among ``states``."""
        assert self.core.loop is not None
        futs = []
        with self.core.cond:
            for st in states:
                if st.remote:
                    fut = self.core.loop.create_future()
                    if st.afuts is None:
                        st.afuts = []
                    st.afuts.append(fut)
                    futs.append(fut)
        self.want_values(states)
        for fut in futs:
            await fut

    def on_value(self, st: KeyState, cb: Callable[[], None]) -> None:
        """Call ``cb()`` once ``st`` is done with its value here (on the
        client's loop thread if not at once)."""
        with self.core.cond:
            if not st.done or st.remote:
                if st.callbacks is None:
                    st.callbacks = []
                st.callbacks.append(lambda: self.on_value(st, cb))
                ready = False
            else:
                ready = True
        if ready:
            cb()
        elif st.done:
            self.want_values([st])

    async def wait_done(self, st: KeyState) -> None:
        """Wait until ``st`` is done, without looking at its outcome."""
        if not st.done:
            assert self.core.loop is not None
            fut = self.core.loop.create_future()
            with self.core.cond:
                if not st.done:
                    if st.afuts is None:
                        st.afuts = []
                    st.afuts.append(fut)
                else:
                    fut.set_result(None)
            await fut

    def on_done(self, st: KeyState, cb: Callable[[], None]) -> None:
        with self.core.cond:
            if not st.done:
                if st.callbacks is None:
                    st.callbacks = []
                st.callbacks.append(cb)
                return
        cb()

