"""Frames of a bound channel: per-connection keys, a counter as the nonce.

A channel (a websocket) starts with an authenticated handshake
(:mod:`mesh.wire._transport`): the client's nonce travels in a sealed
admission token, the server's in a sealed answer. Both ends then derive two
AES-256-GCM keys, one per direction, from the channel key of the secret the
token used and the two nonces (:meth:`mesh.wire.KeyRing.connection_keys`).
No one else holds them: the nonces never crossed the wire in clear, and the
keys also depend on the cluster secret.

Every message on the channel is then a *channel frame* (wire version 3;
layout in ``docs/wire.md``)::

    0   2  magic b"\\xc1M"
    2   1  version (3)
    3   1  purpose (3 message, 4 chunk)
    4   4  key id of the secret the connection's keys derive from
    8   8  counter: 1 for the first frame in this direction, then +1 each
   16  12  chunk only: stream id (8), chunk index (4)
    .   n  ciphertext of the body (a message) or of the data (a chunk)
    .  16  GCM tag; the additional data is the clear header

The AES-GCM nonce is bytes 4-15 (key id and counter), unique per key. The
receiver takes only the next counter: a lower one is a replay (``replay``),
a higher one means a frame went missing (``binding``), and a frame that does
not authenticate under this connection's key (moved from another
connection, forged or altered) is ``binding`` too. So the counter is the
nonce and the replay check at once, and a frame opens on one connection, at
one position, once. No timestamp, sender id or replay table is involved:
the handshake's token carries those (it opens once, within the replay
window), and everything after it is bound to it.

A chunk frame's counter is checked (and taken) on receipt; its data is
decrypted later, off the event loop (:meth:`SealedChunk.open`): a chunk that
fails then must end the channel, which every caller does.

:class:`ChannelCipher` does no I/O and reads no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mesh.errors import WireError
from mesh.wire._frame import MAGIC, VERSION
from mesh.wire._keys import PURPOSES

__all__ = ["CHANNEL_CHUNK_OVERHEAD", "CHANNEL_OVERHEAD", "CHANNEL_VERSION", "ChannelCipher",
           "SealedChunk"]

Buffer = bytes | bytearray | memoryview

CHANNEL_VERSION = 3
"""The wire version of channel frames (codec frames are version 2)."""
_MESSAGE = PURPOSES["channel"]
_CHUNK = PURPOSES["chunk"]
HEAD_LEN = 16
TAG_LEN = 16
_CHUNK_HEAD = struct.Struct(">8sI")  # stream id, chunk index
CHUNK_HEAD_LEN = HEAD_LEN + _CHUNK_HEAD.size
CHANNEL_OVERHEAD = HEAD_LEN + TAG_LEN
"""Bytes a channel frame adds to its body (32)."""
CHANNEL_CHUNK_OVERHEAD = CHUNK_HEAD_LEN + TAG_LEN
"""Bytes a channel chunk frame adds to its data (44)."""


def _prefix(purpose: int, key_id: bytes) -> bytes:
    return MAGIC + bytes([CHANNEL_VERSION, purpose]) + key_id


class SealedChunk:
    """A chunk frame whose place on the channel was checked (its counter was
    the next one) and whose data is still sealed. :meth:`open` may run on
    any thread."""

    __slots__ = ("_aes", "frame", "index", "stream")

    def __init__(self, frame: Buffer, aes: AESGCM) -> None:
        self.frame = frame
        self._aes = aes
        self.stream, self.index = _CHUNK_HEAD.unpack_from(frame, HEAD_LEN)

    def __len__(self) -> int:
        return len(self.frame)

    def open(self) -> bytes:
        """The chunk's data; raises :class:`WireError` (``binding``) if the
        frame does not authenticate under this connection's key."""
        view = memoryview(self.frame)
        try:
            return self._aes.decrypt(view[4:HEAD_LEN], view[CHUNK_HEAD_LEN:],
                                     view[:CHUNK_HEAD_LEN])
        except InvalidTag:
            raise WireError("binding", "a chunk not sealed for this connection (moved, "
                                       "forged or altered)") from None

    @property
    def data_len(self) -> int:
        """Bytes of data the chunk carries."""
        return len(self.frame) - CHANNEL_CHUNK_OVERHEAD

    def open_into(self, out: memoryview) -> None:
        """Decrypt the chunk's data straight into ``out`` (``data_len``
        bytes). Raises :class:`WireError` (``binding``) as :meth:`open`; ``out``
        is then zeroed, so what did not authenticate does not stay there."""
        view = memoryview(self.frame)
        try:
            self._aes.decrypt_into(view[4:HEAD_LEN], view[CHUNK_HEAD_LEN:],
                                   view[:CHUNK_HEAD_LEN], out)
        except InvalidTag:
            out[:] = bytes(out.nbytes)
            raise WireError("binding", "a chunk not sealed for this connection (moved, "
                                       "forged or altered)") from None


class ChannelCipher:
    """Seals and opens the frames of one end of one channel.

    ``send_key`` and ``recv_key`` are the two per-direction keys (32 bytes
    each); the other end holds them swapped. ``max_size`` bounds a frame.
    """

    __slots__ = ("_rx", "_rx_aes", "_rx_chunk", "_rx_msg", "_tx", "_tx_aes", "_tx_chunk",
                 "_tx_msg", "key_id", "max_size")

    def __init__(self, key_id: bytes, send_key: bytes, recv_key: bytes, max_size: int) -> None:
        self.key_id = key_id
        self.max_size = max_size
        self._tx_aes = AESGCM(send_key)
        self._rx_aes = AESGCM(recv_key)
        self._tx_msg = _prefix(_MESSAGE, key_id)
        self._tx_chunk = _prefix(_CHUNK, key_id)
        self._rx_msg, self._rx_chunk = self._tx_msg, self._tx_chunk
        self._tx = 0  # counters of the last frame sealed / opened
        self._rx = 0

    # ------------------------------------------------------------------- seal
    def seal(self, body: Buffer) -> bytes:
        """``body`` (any bytes; mesh sends msgpack) as the next frame."""
        n = len(body) + CHANNEL_OVERHEAD
        if n > self.max_size:
            raise WireError("oversized", f"{n} > {self.max_size} bytes")
        self._tx += 1
        head = self._tx_msg + self._tx.to_bytes(8, "big")
        return head + self._tx_aes.encrypt(head[4:], body, head)

    def seal_chunk(self, stream: bytes, index: int, parts: Sequence[Buffer]) -> bytearray:
        """The next frame: a chunk of stream ``stream`` (8 bytes) at
        ``index``, encrypted straight from ``parts`` (joined only when a
        chunk spans several) into the frame."""
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        end = CHUNK_HEAD_LEN + len(data) + TAG_LEN
        if end > self.max_size:
            raise WireError("oversized", f"a chunk frame of {end} > {self.max_size} bytes")
        self._tx += 1
        head = self._tx_chunk + self._tx.to_bytes(8, "big") + _CHUNK_HEAD.pack(stream, index)
        out = bytearray(end)
        out[:CHUNK_HEAD_LEN] = head
        self._tx_aes.encrypt_into(head[4:HEAD_LEN], data, head, memoryview(out)[CHUNK_HEAD_LEN:])
        return out

    # ------------------------------------------------------------------- open
    def open(self, frame: Buffer) -> bytes | SealedChunk:
        """The body of the next message frame, or the next chunk frame still
        sealed. Raises :class:`WireError`: ``oversized``, ``truncated``,
        ``malformed``, ``version``, ``purpose``, ``unknown_key`` (the header),
        ``replay`` (a counter already taken), ``binding`` (a counter skipped,
        or a frame this connection's key does not open)."""
        n = len(frame)
        head = bytes(frame[:8])
        if head == self._rx_msg:
            chunk = False
        elif head == self._rx_chunk:
            chunk = True
        else:
            self._diagnose(frame)
        if n < CHANNEL_OVERHEAD + (CHUNK_HEAD_LEN - HEAD_LEN) * chunk:
            raise WireError("truncated", f"{n} bytes")
        if n > self.max_size:
            raise WireError("oversized", f"{n} > {self.max_size} bytes")
        counter = int.from_bytes(frame[8:16], "big")
        if counter != self._rx + 1:
            if counter <= self._rx:
                raise WireError("replay", f"counter {counter} on a channel at {self._rx}")
            raise WireError("binding", f"counter {counter} where {self._rx + 1} was due "
                                       "(a frame went missing)")
        if chunk:
            self._rx = counter
            return SealedChunk(frame, self._rx_aes)
        view = memoryview(frame)
        try:
            body = self._rx_aes.decrypt(view[4:HEAD_LEN], view[HEAD_LEN:], view[:HEAD_LEN])
        except InvalidTag:
            raise WireError("binding", "a frame not sealed for this connection (moved, "
                                       "forged or altered)") from None
        self._rx = counter
        return body

    def _diagnose(self, frame: Buffer) -> None:
        if len(frame) < HEAD_LEN:
            raise WireError("truncated", f"{len(frame)} bytes")
        if bytes(frame[:2]) != MAGIC:
            raise WireError("malformed", "bad magic")
        if frame[2] != CHANNEL_VERSION:
            which = " (a codec frame)" if frame[2] == VERSION else ""
            raise WireError("version", f"wire version {frame[2]}{which} on a channel, which "
                                       f"speaks {CHANNEL_VERSION}")
        if frame[3] not in (_MESSAGE, _CHUNK):
            raise WireError("purpose", f"purpose {frame[3]} on a channel")
        raise WireError("unknown_key", f"key id {bytes(frame[4:8]).hex()} is not this "
                                       "connection's")
