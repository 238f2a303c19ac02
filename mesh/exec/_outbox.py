"""A destination's buffered messages and the task that sends them (the exec
service keeps one per peer link and one per client session)."""

from __future__ import annotations

import asyncio
from typing import Any

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

    def push_later(self, msgs: list) -> bool:
        """Buffer messages nothing waits on without waking the sender: they
        go with the next frame, in order. True if the caller should arm
        :attr:`later` (none is armed)."""
        if self.buf:
            self.buf.extend(msgs)
        else:
            self.buf = msgs
        return self.later is None

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
