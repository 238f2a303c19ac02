"""Values the client sends to the mesh: ``Client.scatter`` and the large
arguments ``submit`` and ``map`` scatter on their own.

A value is serialized with pickle protocol 5 (:func:`mesh.store.dumps`): a
small header and the object's own buffers (a numpy array's memory, large
``bytes``), never joined. Its key is content-addressed (``hash=True``, as
Dask's ``tokenize``): the type's name and the SHA-256 of the value's bytes,
which is also the ident the transfer offers; with ``hash=False`` nothing is
hashed and the ident is a random token. It travels
to the entry node as a transfer: an offer of a
:class:`~mesh.protocol.messages.Scatter`, then chunks of
``Config.transfer_chunk`` bytes, each a tuple of memoryview slices of the
buffers sealed straight into its frame, under the node's credit
(``Config.transfer_window`` chunks in flight). :class:`Uploads` holds the
senders; :class:`mesh._client_core.ClientCore` sends one chunk between
batches of small messages, so a task's message waits behind at most one.
"""

from __future__ import annotations

import itertools
import secrets
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from mesh.errors import MeshError
from mesh.protocol import payload as P
from mesh.protocol.messages import Scatter, encode
from mesh.store._channel import OFFER, Outbound
from mesh.store._chunks import value_digest
from mesh.store._serialize import dumps
from mesh.store._transfer import Cancel, Chunk, Sender
from mesh.store._values import Value

if TYPE_CHECKING:
    from mesh._client_future import KeyState

__all__ = ["ScatteredValueLost", "Upload", "Uploads", "lost_spec", "prepare", "quick_size"]


class ScatteredValueLost(MeshError, LookupError):
    """Every node that held a scattered value left the mesh; there is no
    spec to compute it again. Scatter it again."""


def value_lost(key: str) -> None:
    """The function of a scattered key's spec: it runs only when no node
    holds the value any more."""
    raise ScatteredValueLost(f"the scattered value {key!r} was lost: every node that held it "
                             "left the mesh; scatter it again (or keep more replicas=)")


_LOST_FN: list[bytes] = []


def lost_spec(key: str, replicas: int) -> list:
    """The spec a client resubmits for a scattered key (a reconnect, a
    :class:`~mesh.protocol.messages.Lost`): holders answer with the value;
    if none is left it fails with :class:`ScatteredValueLost`."""
    if not _LOST_FN:
        _LOST_FN.append(P.dumps_function(value_lost))
    return [_LOST_FN[0], P.ARGS_MSGPACK, msgpack.packb((key,), use_bin_type=True), [], 0,
            replicas]


@dataclass(slots=True, eq=False)
class Upload:
    """One value on its way to the entry node, kept until it is acknowledged
    (a reconnect offers it again)."""

    key: str
    value: Value
    ident: bytes
    """The transfer's ident (:mod:`mesh.store._transfer`): the content
    digest with ``hash=True``, else a random token."""
    replicas: int
    state: KeyState | None = None


_unique = itertools.count()


def prepare(obj: Any, *, key: str | None, hash: bool, client_id: str,
            replicas: int) -> Upload:
    """Serialize ``obj`` without copying its buffers and name it."""
    header, buffers = dumps(obj)
    value = Value.of(header, buffers)
    if key is not None or not hash:  # nothing to hash: the ident is a token
        if key is None:
            key = f"{type(obj).__name__}-{client_id}-s{next(_unique)}"
        return Upload(key, value, secrets.token_bytes(16), replicas)
    digest = value_digest(value)
    return Upload(f"{type(obj).__name__}-{digest[:16].hex()}", value, digest, replicas)


SMALL = frozenset({int, float, bool, type(None), complex})
"""Types whose pickle is always small."""


_SCAN = 100
"""Items of a list, tuple, set or dict that :func:`quick_size` looks at."""


def quick_size(obj: Any, depth: int = 2) -> int:
    """A cheap estimate of ``obj``'s pickled size, to find the arguments
    worth serializing apart: ``nbytes`` (numpy, pandas series, memoryview),
    a string's length, the first items of a container (two levels deep),
    else ``sys.getsizeof`` (a pandas frame's counts its data). Futures and
    plain scalars are 0."""
    t = type(obj)
    if t in SMALL or getattr(t, "_mesh_future_", False):
        return 0
    if t is bytes or t is str or t is bytearray:
        return len(obj)
    if t in (list, tuple, set, frozenset, dict):
        items = obj.values() if t is dict else obj
        inner = sum(quick_size(x, depth - 1) for x in itertools.islice(items, _SCAN)
                    ) if depth else 0
        return inner + sys.getsizeof(obj)
    n = getattr(obj, "nbytes", None)
    if type(n) is int:
        return n
    try:
        return sys.getsizeof(obj)
    except TypeError:
        return 0


class Uploads:
    """The client's senders: values offered to the entry node, by key."""

    def __init__(self, first_tid: int, *, chunk: int, window: int) -> None:
        self.pending: dict[str, Upload] = {}
        self.out = Outbound()
        self.chunk = chunk
        self.window = window
        self._tid = first_tid
        self.limit: int | None = None
        """The largest value the entry node accepts (its welcome says), if known."""

    def add(self, up: Upload) -> list:
        """Register ``up``; its offer, to send in a control frame."""
        self.pending[up.key] = up
        return self._offer(up)

    def _offer(self, up: Upload) -> list:
        self._tid += 1
        sender = Sender(self._tid, up.value, chunk_size=self.chunk, window=self.window,
                        ident=up.ident)
        self.out.add(sender)
        entry = [up.key, sender.tid, list(up.value.sizes), up.ident, self.chunk]
        return [OFFER, encode(Scatter(up.key, b"", up.replicas)), [entry]]

    def reconnected(self) -> list:
        """A new channel: offer every unacknowledged value again (the node
        that received part of one dropped it)."""
        self.out.clear()
        return [self._offer(up) for up in self.pending.values()]

    def control(self, raw: list) -> bool:
        """A credit or cancel from the node; True if a chunk may go."""
        return self.out.control(raw)

    def next_chunk(self) -> Chunk | None:
        return self.out.next_chunk() if self.pending else None

    def done(self, key: str) -> Upload | None:
        """``key`` was acknowledged (kept or refused): forget its value."""
        up = self.pending.pop(key, None)
        if up is not None:
            for tid, sender in list(self.out.senders.items()):
                if sender.value is up.value:
                    sender.handle(Cancel(tid))  # the interleaver drops it
                    del self.out.senders[tid]
        return up
