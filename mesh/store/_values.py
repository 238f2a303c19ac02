"""What the store keeps: a serialized value (a small header and its
out-of-band buffers) and the names of those who hold it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Buffer = memoryview
"""One out-of-band buffer: a contiguous, byte-formatted view. Read-only when
it comes back from a spill file or a transfer."""


@dataclass(frozen=True, slots=True)
class Value:
    """A serialized value as :func:`mesh.store.dumps` makes it: ``header``
    (msgpack, small) and ``buffers`` (the large parts, never joined)."""

    header: bytes
    buffers: tuple[Buffer, ...] = ()
    source: str | None = None
    """The name of a complete file in the node's spill directory that holds
    exactly these bytes in the spill-file layout (its buffers are then views of
    a map of it), or None when the value lives only in memory."""
    ident: bytes = b""
    """The value's identity on the wire (:mod:`mesh.store._transfer`): two
    sources that offer one ident hold the same bytes, so a transfer resumed
    from the other keeps what it received. Set on a value that arrived by
    transfer (the ident it was offered with, so every replica offers the
    same); empty otherwise, and then the sender chooses one."""

    @classmethod
    def of(cls, header: bytes, buffers: Sequence[Buffer | bytes | bytearray] = ()) -> Value:
        return cls(bytes(header), tuple(memoryview(b).cast("B") for b in buffers))

    @property
    def sizes(self) -> tuple[int, ...]:
        """Lengths of the header and of each buffer, in stream order."""
        return (len(self.header), *(b.nbytes for b in self.buffers))

    @property
    def nbytes(self) -> int:
        return len(self.header) + sum(b.nbytes for b in self.buffers)

    def segments(self) -> tuple[Buffer, ...]:
        """The header and the buffers as one sequence of views, in stream order."""
        return (memoryview(self.header), *self.buffers)

    def same_bytes(self, other: Value) -> bool:
        """True when both hold the same bytes in the same layout (a test helper
        and a check for replicas; compares without joining the buffers)."""
        return self.sizes == other.sizes and all(
            a == b for a, b in zip(self.segments(), other.segments(), strict=True))


CLIENT = "client"
"""A client session holds the key (its future is alive)."""
TASK = "task"
"""A local task needs the key as an input."""
REPLICA = "replica"
"""This node is one of the key's replicas (placement put it here)."""

Holder = tuple[str, str]
"""``(kind, id)``: ``(CLIENT, session id)``, ``(TASK, task key)``,
``(REPLICA, key)``. A value lives while at least one holder is left."""


def payload_size(payload: bytes | Value) -> int:
    """Bytes of an exec payload: a result's bytes or a stored Value."""
    return payload.nbytes if type(payload) is Value else len(payload)
