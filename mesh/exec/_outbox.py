"""A destination's buffered messages and the task that sends them (the exec
service keeps one per peer link and one per client session)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from mesh.runtime import Channel, ChannelClosed
from mesh.store._channel import Outbound

__all__ = ["Outbox"]


class Outbox:
    """Messages for one destination and the task that sends them."""

    __slots__ = ("broken", "buf", "ctl", "later", "out", "task", "wake")

    def __init__(self) -> None:
        self.buf: list = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.broken = False
        self.ctl: list = []
        """Transfer control messages (offers, credits, cancels)."""
        self.out = Outbound()
        """Values being sent to this destination, chunk by chunk."""
        self.later: Any = None
        """The timer that sends messages pushed with :meth:`push_later` if
        nothing else is sent first."""

    def push(self, msgs: list) -> None:
        if self.buf:
            self.buf.extend(msgs)
        else:
            self.buf = msgs
        self.wake.set()

    def push_later(self, msgs: list, arm: Callable[[Callable[[], None]], Any]) -> None:
        """Buffer messages nothing waits on without waking the sender: they
        go with the next frame, in order, or when the timer that
        ``arm(callback)`` sets fires (one armed at a time)."""
        if self.buf:
            self.buf.extend(msgs)
        else:
            self.buf = msgs
        if self.later is None:
            self.later = arm(self.flush_later)

    def flush_later(self) -> None:
        """:attr:`later` fired: send what waits, if nothing took it yet."""
        self.later = None
        if self.buf:
            self.wake.set()

    def take(self) -> list:
        msgs, self.buf = self.buf, []
        self.wake.clear()
        return msgs

    def push_control(self, msg: list) -> None:
        self.ctl.append(msg)
        self.wake.set()

    def take_control(self) -> list:
        ctl, self.ctl = self.ctl, []
        return ctl

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
