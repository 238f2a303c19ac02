"""A virtual-time asyncio event loop.

:class:`SimLoop` is a real :class:`asyncio.AbstractEventLoop` (it subclasses
:class:`asyncio.BaseEventLoop`), so tasks, futures, ``asyncio.sleep``,
``asyncio.timeout``, ``asyncio.wait_for``, ``asyncio.TaskGroup``, events and
queues all work unchanged. Only time is different:

* :meth:`SimLoop.time` returns a virtual clock that starts at 0.0.
* When nothing is ready to run, the clock jumps straight to the earliest timer
  instead of waiting, so idle time costs nothing.
* There is no I/O: no selector, no sockets, no threads. Everything that reaches
  the loop from "outside" (the simulated network) is itself a timer.

Guarantees:

* Determinism. Timers fire in order of their time and, for equal times, in the
  order they were scheduled (a sequence number breaks ties; asyncio's own heap
  leaves such ties unspecified). Ready callbacks run first-in first-out. Given the
  same sequence of calls, the loop makes the same sequence of callbacks.
* The clock never goes backwards and only moves when the ready queue is empty.
* A loop with nothing ready and nothing scheduled, while something still waits
  on it, raises :class:`SimDeadlock` instead of hanging forever.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVar

from mesh.errors import MeshError

T = TypeVar("T")

_CLEANUP_MIN = 4096
"""Sweep cancelled timers out of the heap once there are at least this many
entries and more than half are cancelled (keeps the heap small when most
timeouts are cancelled before they fire, which is the common case)."""


class SimDeadlock(MeshError):
    """The simulated world has nothing left to do (no ready callback and no
    timer) while the loop was asked to keep running. A task waits for something
    that can never happen: look for a future nobody resolves."""


class SimLivelock(MeshError):
    """The loop kept running callbacks without virtual time ever moving on
    (``stall_limit`` iterations at one instant): some timer keeps rescheduling
    itself for "now". A real node would spin a CPU core at 100% here."""


class SimLoop(asyncio.BaseEventLoop):
    """An asyncio event loop on virtual time. See the module docstring."""

    def __init__(self, start: float = 0.0, stall_limit: int = 200_000) -> None:
        super().__init__()
        self.stall_limit = stall_limit
        self._stalled = 0
        self._now = float(start)
        self._seq = 0
        self._heap: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._scheduled = self._heap  # BaseEventLoop.close() clears it
        self._cancelled_count = 0
        self.callbacks_run = 0
        """How many callbacks (task steps, timers, deliveries) the loop has run."""

    # --- clock ---------------------------------------------------------------
    def time(self) -> float:
        """Virtual seconds since the loop was created (plus ``start``)."""
        return self._now

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback(*args)`` at virtual time ``when``. Times in the
        past run on the next iteration, after callbacks scheduled earlier."""
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, timer))
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        if handle._scheduled:  # type: ignore[attr-defined]
            self._cancelled_count += 1

    # --- the loop itself -----------------------------------------------------
    def _sweep_cancelled(self) -> None:
        keep = []
        for entry in self._heap:
            if entry[2]._cancelled:  # type: ignore[attr-defined]
                entry[2]._scheduled = False  # type: ignore[attr-defined]
            else:
                keep.append(entry)
        heapq.heapify(keep)
        self._heap[:] = keep
        self._cancelled_count = 0

    def _run_once(self) -> None:
        heap = self._heap
        ready = self._ready  # type: ignore[attr-defined]
        if len(heap) > _CLEANUP_MIN and self._cancelled_count * 2 > len(heap):
            self._sweep_cancelled()
        while heap and heap[0][2]._cancelled:  # type: ignore[attr-defined]
            heapq.heappop(heap)[2]._scheduled = False  # type: ignore[attr-defined]
            self._cancelled_count -= 1
        if not ready and not self._stopping:  # type: ignore[attr-defined]
            if not heap:
                raise SimDeadlock(
                    f"nothing is ready and no timer is pending at t={self._now:.6f}s; "
                    "some task waits for a future that nothing will resolve"
                )
            when = heap[0][0]
            if when > self._now:
                self._now = when
                self._stalled = 0
        self._stalled += 1
        if self._stalled > self.stall_limit:
            self._stalled = 0
            raise SimLivelock(
                f"{self.stall_limit} loop iterations at t={self._now:.6f}s without time moving "
                "on; a timer keeps rescheduling itself for now"
            )
        now = self._now
        while heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[2]
            timer._scheduled = False  # type: ignore[attr-defined]
            if timer._cancelled:  # type: ignore[attr-defined]
                self._cancelled_count -= 1
            else:
                ready.append(timer)
        n = len(ready)
        self.callbacks_run += n
        popleft = ready.popleft
        for _ in range(n):
            handle = popleft()
            if not handle._cancelled:
                handle._run()

    def _write_to_self(self) -> None:
        # Only call_soon_threadsafe uses this; the simulator has no threads.
        pass

    def _process_events(self, event_list: list[Any]) -> None:
        pass

    # --- helpers for drivers -------------------------------------------------
    def run_until(self, when: float) -> None:
        """Run every callback due up to virtual time ``when``, then stop with the
        clock at exactly ``when``. Returns at once if ``when`` is not later than
        now."""
        if when <= self._now:
            return
        handle = self.call_at(when, self.stop)
        try:
            self.run_forever()
        finally:
            handle.cancel()
        self._now = max(self._now, when)

    def pending_timers(self) -> int:
        """Timers scheduled and not cancelled (for tests and diagnostics)."""
        return sum(1 for e in self._heap if not e[2]._cancelled)  # type: ignore[attr-defined]


def run(main: Coroutine[Any, Any, T], start: float = 0.0) -> T:
    """Run ``main`` to completion on a fresh :class:`SimLoop` and close it,
    like :func:`asyncio.run` on virtual time. Tasks still pending at the end are
    cancelled and awaited."""
    with asyncio.Runner(loop_factory=lambda: SimLoop(start)) as runner:
        return runner.run(main)
