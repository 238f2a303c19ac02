"""A destination's buffered messages and the task that sends them (the exec
service keeps one per peer link and one per client session)."""

from __future__ import annotations

import asyncio

from mesh.store._channel import Outbound

__all__ = ["Outbox"]


class Outbox:
    """Messages for one destination and the task that sends them."""

    __slots__ = ("broken", "buf", "ctl", "out", "task", "wake")

    def __init__(self) -> None:
        self.buf: list = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.broken = False
        self.ctl: list = []
        """Transfer control messages (offers, credits, cancels)."""
        self.out = Outbound()
        """Values being sent to this destination, chunk by chunk."""

    def push(self, msgs: list) -> None:
        if self.buf:
            self.buf.extend(msgs)
        else:
            self.buf = msgs
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
