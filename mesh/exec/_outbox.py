"""A destination's buffered messages and the task that sends them (the exec
service keeps one per peer link and one per client session)."""

from __future__ import annotations

import asyncio

__all__ = ["Outbox"]


class Outbox:
    """Messages for one destination and the task that sends them."""

    __slots__ = ("broken", "buf", "task", "wake")

    def __init__(self) -> None:
        self.buf: list = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.broken = False

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
