"""Chunked transfers of one value as two sans-IO state machines.

A :class:`Sender` cuts a value (header + buffers, never joined) into chunks
of ``chunk_size`` stream bytes; chunk ``seq`` covers stream bytes
``[seq * chunk_size, (seq + 1) * chunk_size)``. A :class:`Receiver` writes
each chunk into a preallocated :class:`~mesh.store._chunks.Sink` and hands
the value over only when every chunk arrived, in order and of its length: a
partly received value is never used.

Integrity is the channel's: every chunk travels sealed (AES-256-GCM under the
connection's key, its stream and index in the additional data), so a chunk
that reaches a receiver is the sender's, at its place. The offer's ``ident``
names the value, not its bytes: it costs nothing per byte, and two offers
with the same ident (replicas of one value, which pass the ident on with it)
hold the same bytes, so a resumed transfer keeps its prefix.

Messages (carried by the driver over the peers' authenticated channel)::

    sender -> receiver   Offer(tid, sizes, ident, chunk_size), Chunk(tid, seq, parts)
    receiver -> sender   Credit(tid, next_seq, limit, rewind), Cancel(tid)

Flow control: ``Credit`` acknowledges every chunk below ``next_seq`` and
allows chunks below ``limit``; the sender also never has more than its own
``window`` chunks unacknowledged. The receiver accepts chunks in order only
(go-back-N): a chunk past a gap is dropped and answered once with
``rewind=True``, which moves the sender back to ``next_seq``.

Resuming: a receiver takes a new ``Offer`` (a new ``tid``, from the same or
another source) at any time. With the same sizes and ident (and a chunk
size that divides what arrived) it keeps the chunks it has and asks the new
source to start at ``next_seq``; otherwise (a value computed again, with an
ident of its own) it starts from 0. The
old source gets a ``Cancel``; chunks of an old ``tid`` are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from mesh.store._chunks import MemorySink, Segments, Sink, value_digest
from mesh.store._values import Buffer, Value

# ------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class Offer:
    tid: int
    sizes: tuple[int, ...]
    ident: bytes
    chunk_size: int


@dataclass(frozen=True, slots=True)
class Chunk:
    tid: int
    seq: int
    parts: tuple[Buffer, ...]
    placed: bool = False
    """The parts are already where the sink keeps them (decrypted into the
    view :meth:`Receiver.place` gave): nothing to write."""

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)


@dataclass(frozen=True, slots=True)
class Credit:
    tid: int
    next_seq: int
    limit: int
    rewind: bool = False


@dataclass(frozen=True, slots=True)
class Cancel:
    tid: int


# ------------------------------------------------------- receiver's effects


@dataclass(frozen=True, slots=True)
class Complete:
    """The whole value arrived (from offer ``tid``); ``value.ident`` is the offer's."""

    tid: int
    value: Value


@dataclass(frozen=True, slots=True)
class Corrupt:
    """Source ``tid`` sent a chunk that does not fit what it offered; what it
    sent is thrown away. The driver asks another source (a new offer)."""

    tid: int
    reason: str


@dataclass(frozen=True, slots=True)
class Stalled:
    """Nothing arrived from source ``tid`` for ``stall_after`` seconds."""

    tid: int


def chunk_count(total: int, chunk_size: int) -> int:
    return math.ceil(total / chunk_size)


# -------------------------------------------------------------------- sender

OFFERED = "offered"
SENDING = "sending"
DONE = "done"
CANCELLED = "cancelled"


class Sender:
    """Sends one value to one receiver. ``ident`` names the value (see the
    module docstring); without one it is ``value.ident``, else the value's
    :func:`value_digest` (a pass over its bytes: nodes give a token instead)."""

    def __init__(self, tid: int, value: Value, *, chunk_size: int, window: int,
                 ident: bytes | None = None) -> None:
        if chunk_size < 1 or window < 1:
            raise ValueError("chunk_size and window must be at least 1")
        self.tid = tid
        self.value = value
        self.chunk_size = chunk_size
        self.window = window
        self.ident = ident or value.ident or value_digest(value)
        self.segments = Segments(value.sizes)
        self._segs = value.segments()
        self.nchunks = chunk_count(self.segments.total, chunk_size)
        self.state = OFFERED
        self.acked = 0
        """Every chunk below this arrived."""
        self.pos = 0
        """The next chunk to send."""
        self.limit = 0

    def offer(self) -> Offer:
        return Offer(self.tid, self.value.sizes, self.ident, self.chunk_size)

    @property
    def in_flight(self) -> int:
        return self.pos - self.acked

    def ready(self) -> bool:
        """True when credit and the window allow one more chunk."""
        return (self.state == SENDING and self.pos < self.nchunks and self.pos < self.limit
                and self.in_flight < self.window)

    def handle(self, msg: Credit | Cancel) -> None:
        if msg.tid != self.tid or self.state in (DONE, CANCELLED):
            return
        _SENDER_TABLE[self.state, type(msg)](self, msg)

    def _credit(self, msg: Credit) -> None:
        if not 0 <= msg.next_seq <= self.nchunks or msg.next_seq > msg.limit:
            return  # not a credit this transfer can have asked for
        if self.state == OFFERED or msg.rewind or msg.next_seq > self.pos:
            self.pos = msg.next_seq  # where the receiver wants us (start, resume, resend)
        self.state = SENDING
        self.acked = max(self.acked, msg.next_seq) if not msg.rewind else msg.next_seq
        self.limit = msg.limit
        if self.acked == self.nchunks:
            self.state = DONE

    def _cancel(self, msg: Cancel) -> None:
        self.state = CANCELLED

    def next_chunk(self) -> Chunk | None:
        """The next chunk, if credit and the window allow it."""
        if not self.ready():
            return None
        seq = self.pos
        self.pos += 1
        start = seq * self.chunk_size
        n = min(self.chunk_size, self.segments.total - start)
        parts = tuple(self._segs[i][at:at + k] for i, at, k in self.segments.spans(start, n))
        return Chunk(self.tid, seq, parts)


_SENDER_TABLE: dict[tuple[str, type], Callable[[Sender, object], None]] = {
    (OFFERED, Credit): Sender._credit,
    (SENDING, Credit): Sender._credit,
    (OFFERED, Cancel): Sender._cancel,
    (SENDING, Cancel): Sender._cancel,
}

# ------------------------------------------------------------------ receiver

WAITING = "waiting"
"""No usable offer yet (or the last source sent a chunk that did not fit)."""
RECEIVING = "receiving"
COMPLETE = "complete"

ReceiverEffect = Credit | Cancel | Complete | Corrupt | Stalled


class Receiver:
    """Receives one value, from one source at a time. ``make_sink`` allocates
    the buffer for a value of the offered sizes (:class:`MemorySink` by
    default; :class:`~mesh.store._chunks.FileSink` to land it on disk)."""

    def __init__(self, *, window: int, stall_after: float,
                 make_sink: Callable[[Sequence[int]], Sink] = MemorySink) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.stall_after = stall_after
        self.make_sink = make_sink
        self.state = WAITING
        self.offer: Offer | None = None
        self.sink: Sink | None = None
        self.next_seq = 0
        self.nchunks = 0
        self.value: Value | None = None
        self.stale = 0
        """Chunks ignored: an old source's, duplicates, or past a gap."""
        self._rewound_at = -1
        self._progress = 0.0

    def handle(self, msg: Offer | Chunk, now: float) -> list[ReceiverEffect]:
        out: list[ReceiverEffect] = []
        handler = _RECEIVER_TABLE.get((self.state, type(msg)))
        if handler is None:  # a chunk while waiting, anything once complete
            self.stale += isinstance(msg, Chunk)
            return out
        handler(self, msg, now, out)
        return out

    def _credit(self, rewind: bool = False) -> Credit:
        assert self.offer is not None
        return Credit(self.offer.tid, self.next_seq, self.next_seq + self.window, rewind)

    def _reset(self, offer: Offer) -> None:
        if self.sink is not None:
            self.sink.discard()
        self.sink = self.make_sink(offer.sizes)
        self.next_seq = 0

    def _on_offer(self, offer: Offer, now: float, out: list[ReceiverEffect]) -> None:
        old = self.offer
        if offer.chunk_size < 1 or any(s < 0 for s in offer.sizes):
            return
        if old is not None and offer.tid == old.tid:
            return  # the same offer again
        if old is not None and self.state == RECEIVING:
            out.append(Cancel(old.tid))
        same = (old is not None and self.sink is not None and old.sizes == offer.sizes
                and old.ident == offer.ident
                and (self.next_seq * old.chunk_size) % offer.chunk_size == 0)
        if same:
            assert old is not None
            self.next_seq = self.next_seq * old.chunk_size // offer.chunk_size
        else:
            self._reset(offer)
        self.offer = offer
        self.nchunks = chunk_count(sum(offer.sizes), offer.chunk_size)
        self.state = RECEIVING
        self._rewound_at = -1
        self._progress = now
        self._maybe_complete(out)
        if self.state == RECEIVING:
            out.append(self._credit())

    def _on_chunk(self, chunk: Chunk, now: float, out: list[ReceiverEffect]) -> None:
        offer = self.offer
        assert offer is not None and self.sink is not None
        if chunk.tid != offer.tid or chunk.seq < self.next_seq or chunk.seq >= self.nchunks:
            self.stale += 1
            return
        if chunk.seq > self.next_seq:  # a gap: one rewind per gap
            self.stale += 1
            if self._rewound_at != self.next_seq:
                self._rewound_at = self.next_seq
                out.append(self._credit(rewind=True))
            return
        start = chunk.seq * offer.chunk_size
        expected = min(offer.chunk_size, sum(offer.sizes) - start)
        if chunk.nbytes != expected:
            self._corrupt(f"chunk {chunk.seq} is {chunk.nbytes} bytes, not {expected}", out)
            return
        if not chunk.placed:
            self.sink.write(start, chunk.parts)
        self.next_seq += 1
        self._progress = now
        self._maybe_complete(out)
        if self.state == RECEIVING:
            out.append(self._credit())

    def _maybe_complete(self, out: list[ReceiverEffect]) -> None:
        offer = self.offer
        assert offer is not None and self.sink is not None
        if self.next_seq < self.nchunks:
            return
        self.value = replace(self.sink.value(), ident=offer.ident)
        self.sink = None
        self.state = COMPLETE
        out.append(Credit(offer.tid, self.nchunks, self.nchunks))
        out.append(Complete(offer.tid, self.value))

    def _corrupt(self, reason: str, out: list[ReceiverEffect]) -> None:
        assert self.offer is not None
        out.append(Cancel(self.offer.tid))
        out.append(Corrupt(self.offer.tid, reason))
        if self.sink is not None:
            self.sink.discard()
        self.sink = None
        self.next_seq = 0
        self.state = WAITING

    def place(self, tid: int, seq: int, nbytes: int) -> memoryview | None:
        """Where chunk ``seq`` of offer ``tid`` goes, if it is the chunk due
        next, of its length, and lands in one piece: a writable view of the
        sink to decrypt it into (then :meth:`handle` it with ``placed=True``).
        None otherwise: the chunk is opened elsewhere and handled as usual."""
        offer = self.offer
        if (self.state != RECEIVING or offer is None or self.sink is None or tid != offer.tid
                or seq != self.next_seq):
            return None
        start = seq * offer.chunk_size
        if nbytes != min(offer.chunk_size, sum(offer.sizes) - start):
            return None
        return self.sink.place(start, nbytes)

    def tick(self, now: float) -> list[ReceiverEffect]:
        """Report a stall, and ask the source again to send from ``next_seq``
        (a lost rewind or lost last chunks leave nothing else to wake it)."""
        if self.state != RECEIVING or now - self._progress < self.stall_after:
            return []
        assert self.offer is not None
        self._progress = now
        self._rewound_at = self.next_seq
        return [Stalled(self.offer.tid), self._credit(rewind=True)]


_RECEIVER_TABLE: dict[tuple[str, type], Callable[..., None]] = {
    (WAITING, Offer): Receiver._on_offer,
    (RECEIVING, Offer): Receiver._on_offer,
    (RECEIVING, Chunk): Receiver._on_chunk,
}
