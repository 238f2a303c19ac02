"""A destination's buffered messages and the task that sends them (the exec
service keeps one per peer link and one per client session).

Core messages and transfer control messages (offers, credits, cancels) wait
in one queue, in the order they were pushed, as runs of one kind: a value's
offer never overtakes a message pushed before it (an ``Unsubscribe`` of its
key, say), nor is it overtaken by one pushed after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mesh.runtime import Channel, ChannelClosed
from mesh.store._channel import Outbound

__all__ = ["Outbox"]


class Outbox:
    """Messages for one destination and the task that sends them."""

    __slots__ = ("broken", "later", "out", "runs", "task", "wake")

    def __init__(self) -> None:
        self.runs: list[tuple[bool, list]] = []
        """``(control, items)`` in the order pushed: core messages
        (``control`` False) or transfer control messages."""
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.broken = False
        self.out = Outbound()
        """Values being sent to this destination, chunk by chunk."""
        self.later: Any = None
        """The timer that sends messages pushed with :meth:`push_later` if
        nothing else is sent first."""

    def _add(self, control: bool, items: list) -> None:
        runs = self.runs
        if runs and runs[-1][0] is control:
            runs[-1][1].extend(items)
        else:
            runs.append((control, list(items)))

    def push(self, msgs: list) -> None:
        if msgs:
            self._add(False, msgs)
        self.wake.set()

    def push_later(self, msgs: list, arm: Callable[[Callable[[], None]], Any]) -> None:
        """Buffer messages nothing waits on without waking the sender: they
        go with the next frame, in order, or when the timer that
        ``arm(callback)`` sets fires (one armed at a time)."""
        if msgs:
            self._add(False, msgs)
        if self.later is None:
            self.later = arm(self.flush_later)

    def flush_later(self) -> None:
        """:attr:`later` fired: send what waits, if nothing took it yet."""
        self.later = None
        if self.runs:
            self.wake.set()

    def push_control(self, msg: list) -> None:
        self._add(True, [msg])
        self.wake.set()

    def take_runs(self) -> list[tuple[bool, list]]:
        """Everything waiting, in order (see :attr:`runs`)."""
        runs, self.runs = self.runs, []
        self.wake.clear()
        return runs

    async def watch(self, ch: Channel) -> None:
        """Read our outgoing channel ``ch`` to this destination: a read
        returns only when it ends; then mark the box broken and wake its
        sender, which reconnects."""
        try:
            while True:
                await ch.recv()
        except ChannelClosed:
            self.broken = True
            self.wake.set()
