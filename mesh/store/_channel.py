"""Values through the exec channels: a message whose payload is a
:class:`~mesh.store.Value` moves as an offer and then chunks.

The exec core's messages carry ``bytes | Value`` payloads (:class:`Store`,
:class:`Result`, :class:`Grant` between nodes, :class:`Done` to a client).
On the wire, a message that carries Values is sent as an *offer*, a small
message of its own in the channel's ordinary frames::

    ["vo", inner, [[vkey, tid, sizes, ident, chunk_size], ...]]

``inner`` is the message's own wire form with each Value replaced by
``b""``; ``vkey`` names the value (the message's key, or a dependency's key
in a :class:`Grant`); ``ident`` is the value's identity (16 bytes: the one it
arrived with, or a token this node chose; :mod:`mesh.store._transfer`).
The receiver answers each value with credit or a cancel, on its own channel
back (``["vc", tid, next_seq, limit, rewind]``, ``["vx", tid]``), and the
sender sends chunks as *chunk frames* (:meth:`mesh.wire.ChannelCipher.seal_chunk`:
sealed with the channel's keys, the stream id is the tid, the index the
chunk's sequence number) between the batches of small messages: a small
message waits behind at most one chunk (:func:`drain`). The inner message
reaches the core only once every value it carries arrived whole
(:class:`~mesh.store.Receiver`): a partly received value is never used.

The receiving side, one fetch per key per node, is :mod:`mesh.store._fetch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgpack

from mesh.protocol.messages import Done, Grant, ProtocolViolation, Result, Scatter, Store, encode
from mesh.store._interleave import Interleaver
from mesh.store._transfer import Cancel, Chunk, Credit, Sender
from mesh.store._values import Value
from mesh.wire import CHANNEL_OVERHEAD, SealedChunk

__all__ = ["CANCEL", "CONTROL", "CONTROL_FRAME", "CREDIT", "OFFER", "Offers", "Outbound",
           "carries_value", "drain", "fill", "is_chunk_frame", "offered_keys_fit", "values_of"]

log = logging.getLogger("mesh.store")

OFFER, CREDIT, CANCEL = "vo", "vc", "vx"
CONTROL_FRAME = "V"
"""First item of a frame of control messages (offers, credits, cancels)."""
CONTROL = frozenset({OFFER, CREDIT, CANCEL})
_CARRIERS = (Store, Result, Done, Scatter)


def is_chunk_frame(frame: Any) -> bool:
    """What a bound channel's ``recv`` returned is a chunk (still sealed),
    not a message body."""
    return type(frame) is SealedChunk


def carries_value(msg: Any) -> bool:
    t = type(msg)
    if t in _CARRIERS:
        return type(msg.payload) is Value
    if t is Grant:
        return any(type(v[1]) is Value for v in msg.depvals.values())
    return False


def values_of(msg: Any) -> list[tuple[str, Value]]:
    if type(msg) is Grant:
        return [(k, v[1]) for k, v in sorted(msg.depvals.items()) if type(v[1]) is Value]
    return [(msg.key, msg.payload)]


def fill(msg: Any, values: dict[str, Value | bytes]) -> Any:
    """``msg`` with the values of ``values`` put in (``b""`` strips them)."""
    if type(msg) is Grant:
        deps = {k: ([v[0], values[k]] if k in values else v) for k, v in msg.depvals.items()}
        return replace(msg, depvals=deps)
    return replace(msg, payload=values[msg.key])


def offered_keys_fit(msg: Any, keys: set[str]) -> bool:
    """An offer names values its message can carry: its own key, or some of
    a :class:`Grant`'s dependencies."""
    if type(msg) is Grant:
        return keys <= set(msg.depvals)
    return type(msg) in _CARRIERS and keys == {msg.key}


def _stream(tid: int) -> bytes:
    return tid.to_bytes(8, "big")


def int_list(v: Any) -> bool:
    return type(v) is list and all(type(x) is int and x >= 0 for x in v)


# ------------------------------------------------------------------- sending


class Outbound:
    """A destination's transfers: one :class:`~mesh.store.Sender` per
    offered value, taking turns through an :class:`~mesh.store.Interleaver`."""

    __slots__ = ("interleaver", "senders")

    def __init__(self) -> None:
        self.interleaver = Interleaver(1)
        self.senders: dict[int, Sender] = {}

    def add(self, sender: Sender) -> None:
        self.senders[sender.tid] = sender
        self.interleaver.add(sender)

    def control(self, raw: list) -> bool:
        """Apply a ``vc`` / ``vx`` from the receiver; True if a chunk may go."""
        if raw[0] == CREDIT:
            if (len(raw) != 5 or type(raw[1]) is not int or type(raw[2]) is not int
                    or type(raw[3]) is not int or type(raw[4]) is not bool):
                raise ProtocolViolation("a credit must be [vc, tid, next_seq, limit, rewind]")
            msg: Credit | Cancel = Credit(raw[1], raw[2], raw[3], raw[4])
        else:
            if len(raw) != 2 or type(raw[1]) is not int:
                raise ProtocolViolation("a cancel must be [vx, tid]")
            msg = Cancel(raw[1])
        sender = self.senders.get(msg.tid)
        if sender is None:
            return False
        sender.handle(msg)
        if sender.state in ("done", "cancelled"):
            del self.senders[msg.tid]
            return False
        return sender.ready()

    def next_chunk(self) -> Chunk | None:
        chunk = self.interleaver.pop()
        assert chunk is None or isinstance(chunk, Chunk)
        return chunk

    def clear(self) -> None:
        self.senders.clear()
        self.interleaver = Interleaver(1)


IDENT_BYTES = 16


class Offers:
    """Makes offers: allocates transfer ids and gives each value its ident,
    at no cost per byte: ``value.ident`` (the exec layer names each result
    when it is made, and a value that arrived keeps the ident it came with),
    else a token (``runtime.token_bytes``) kept per key and spill file, so
    every offer of one file names it alike (a file name is never reused for
    other bytes while the node lives), else a new token."""

    def __init__(self, runtime: Any, *, chunk: int, window: int) -> None:
        self.runtime = runtime
        self.chunk = chunk
        self.window = window
        self._next = int.from_bytes(runtime.token_bytes(4), "big") << 20
        self._idents: dict[tuple[str, str], bytes] = {}

    def ident(self, vkey: str, value: Value) -> bytes:
        if value.ident:
            return value.ident
        if value.source is None:
            return self.runtime.token_bytes(IDENT_BYTES)
        got = self._idents.get((vkey, value.source))
        if got is None:
            got = self.runtime.token_bytes(IDENT_BYTES)
            if len(self._idents) >= 4096:
                self._idents.pop(next(iter(self._idents)))
            self._idents[vkey, value.source] = got
        return got

    def offer(self, msg: Any, out: Outbound) -> list:
        """The offer message for ``msg``; its senders join ``out``."""
        entries = []
        for vkey, value in values_of(msg):
            ident = self.ident(vkey, value)
            self._next += 1
            sender = Sender(self._next, value, chunk_size=self.chunk, window=self.window,
                            ident=ident)
            out.add(sender)
            entries.append([vkey, sender.tid, list(value.sizes), ident, self.chunk])
        stripped = fill(msg, {vkey: b"" for vkey, _ in values_of(msg)})
        return [OFFER, encode(stripped), entries]


async def drain(box: Any, ch: Any, encode_frames: Callable[..., list[bytes]],
                limit: int, target: int, on_sent: Callable[[int], None]) -> None:
    """Send what ``box`` (an :class:`~mesh.exec._outbox.Outbox`) holds on
    ``ch`` (a :class:`~mesh.wire._transport.BoundChannel`, which seals):
    every waiting core and control message in the order they were pushed,
    then one chunk, until nothing is left. Control messages go in frames of
    their own (``["V", ...]``).
    ``on_sent`` gets each frame's size."""
    out: Outbound = box.out
    while True:
        for control, items in box.take_runs():  # in the order they were pushed
            if control:
                for i in range(0, len(items), 256):
                    body = msgpack.packb([CONTROL_FRAME, *items[i:i + 256]], use_bin_type=True)
                    await ch.send(body)
                    on_sent(len(body) + CHANNEL_OVERHEAD)
            else:
                for body in encode_frames(items, limit, target):
                    await ch.send(body)
                    on_sent(len(body) + CHANNEL_OVERHEAD)
        chunk = out.next_chunk()
        if chunk is None:
            if not box.runs:
                return
            continue
        on_sent(await ch.send_chunk(_stream(chunk.tid), chunk.seq, chunk.parts))


