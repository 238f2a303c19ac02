"""What goes next on a channel to one peer: small messages between the
chunks of large transfers, and the transfers in turn.

A sans-IO queue: the driver pushes small messages with :meth:`send`, adds a
:class:`~mesh.store._transfer.Sender` per transfer with :meth:`add`, and
writes whatever :meth:`pop` gives until it gives ``None``. While messages
and chunks both wait, at most ``burst`` messages go between two chunks, so a
small task's message waits behind at most one chunk and a flood of messages
still leaves the transfers one slot in ``burst + 1``. Transfers that have
credit take turns, one chunk each (round robin)."""

from __future__ import annotations

from collections import deque

from mesh.store._transfer import CANCELLED, DONE, Chunk, Sender


class Interleaver:
    def __init__(self, burst: int) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.burst = burst
        self._messages: deque[object] = deque()
        self._senders: deque[Sender] = deque()
        self._since_chunk = 0

    def send(self, message: object) -> None:
        """Queue a small message (an offer, a credit, a task message)."""
        self._messages.append(message)

    def add(self, sender: Sender) -> None:
        """Take turns sending ``sender``'s chunks, as credit allows."""
        self._senders.append(sender)

    @property
    def transfers(self) -> int:
        return len(self._senders)

    def _next_chunk(self) -> Chunk | None:
        for _ in range(len(self._senders)):
            sender = self._senders.popleft()
            if sender.state in (DONE, CANCELLED):
                continue  # finished: forget it
            self._senders.append(sender)
            chunk = sender.next_chunk()
            if chunk is not None:
                return chunk
        return None

    def pop(self) -> object | None:
        """The next message or chunk to write, or ``None`` when nothing can go
        (no messages, and no transfer has credit)."""
        if self._messages and self._since_chunk < self.burst:
            self._since_chunk += 1
            return self._messages.popleft()
        chunk = self._next_chunk()
        if chunk is not None:
            self._since_chunk = 0
            return chunk
        if self._messages:
            self._since_chunk += 1
            return self._messages.popleft()
        return None
