"""Sealing and opening messages: msgpack bodies in AES-256-GCM frames.

:class:`Codec` is what protocol code uses: ``seal(obj)`` / ``open(frame)``
for one message, :meth:`Codec.seal_stream` / :meth:`Codec.open_stream` for a
small header plus out-of-band buffers sent one chunk at a time. :meth:`open`
checks, in this order, the size, magic, version, purpose and key id, the GCM
tag, the sender's replay window, and only then parses msgpack with limits: no
unauthenticated byte is ever parsed, let alone unpickled.

Clock and randomness (timestamps, epochs, nonces) come from a
:class:`Source`, which a :class:`~mesh.runtime.Runtime` is, so the simulator
stays deterministic.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import msgpack
from cryptography.exceptions import InvalidTag

from mesh.errors import WireError
from mesh.wire import _frame as F
from mesh.wire._keys import PURPOSES, KeyRing, Secrets
from mesh.wire._replay import ReplayGuard

Buffer = bytes | bytearray | memoryview

__all__ = ["Codec", "Identity", "Source", "StreamReader", "replay_guard", "unpack"]


class Source(Protocol):
    """Where a codec gets time and randomness (every Runtime is one)."""

    def wall(self) -> float:
        """Seconds since the Unix epoch (virtual in the simulator)."""

    def token_bytes(self, n: int) -> bytes:
        """``n`` unpredictable bytes (seeded in the simulator)."""


def _system() -> Source:
    from mesh.realtime import SYSTEM

    return SYSTEM


class Identity:
    """Who seals: an 8-byte sender id and the epoch of this life (the wall
    clock in microseconds when it started, above any epoch of an earlier life
    of the same sender)."""

    __slots__ = ("epoch", "sender")

    def __init__(self, sender: bytes, epoch: int) -> None:
        if len(sender) != 8:
            raise ValueError("a sender id is 8 bytes")
        self.sender = sender
        self.epoch = epoch

    @classmethod
    def named(cls, name: str, source: Source) -> Identity:
        """A node's identity: its id follows from its name, so a restart is a
        new life of the same sender and frames of the old life are stale."""
        return cls(hashlib.blake2b(name.encode(), digest_size=8).digest(),
                   int(source.wall() * 1e6))

    @classmethod
    def anonymous(cls, source: Source) -> Identity:
        """A random identity (a client, a command-line query)."""
        return cls(source.token_bytes(8), int(source.wall() * 1e6))


def replay_guard(config: Any) -> ReplayGuard:
    """A replay guard with the bounds of ``config`` (a :class:`mesh.config.Config`)."""
    return ReplayGuard(window=config.replay_window, max_skew=config.max_clock_skew,
                       counter_window=config.replay_counter_window,
                       max_senders=config.replay_max_senders)


_TAIL = F.ENVELOPE_TAIL.pack
_ENVELOPE = F.ENVELOPE.unpack_from


def _no_ext(code: int, data: bytes) -> Any:
    raise WireError("malformed", f"msgpack extension type {code} is not allowed")


def unpack(body: Buffer) -> Any:
    """Parse an authenticated msgpack body (no extension types); raises
    :class:`WireError` (``malformed``) for anything msgpack refuses."""
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=True, ext_hook=_no_ext)
    except WireError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # msgpack signals bad input with these (ExtraData, FormatError and
        # StackError are ValueError subclasses; bad UTF-8 is a ValueError).
        raise WireError("malformed", f"{type(exc).__name__}: {exc}") from None


class Codec:
    """Seals and opens frames of one purpose with one key ring and size bound.

    ``secret`` is one secret or several (the first seals, all open).
    ``identity`` names this sender (default: a random one); ``guard`` keeps
    the replay windows of the senders we hear from (default: one with the
    bounds of :data:`mesh.config.DEFAULT`; ``None`` turns replay checks off,
    for tools that only ever open frames once, such as benchmarks).
    Not thread-safe; one per task or loop.
    """

    __slots__ = ("_aes", "_at", "_counter", "_entropy", "_env", "_guard", "_kid", "_magic",
                 "_openers", "_prefix", "_purpose", "_ring", "_source", "identity", "max_size")

    def __init__(self, secret: Secrets | KeyRing, max_size: int, *, purpose: str = "http",
                 source: Source | None = None, identity: Identity | None = None,
                 guard: ReplayGuard | bool | None = True) -> None:
        self._ring = secret if isinstance(secret, KeyRing) else KeyRing(secret)
        self.max_size = max_size
        self._purpose = PURPOSES[purpose]
        self._source = source if source is not None else _system()
        self.identity = identity if identity is not None else Identity.anonymous(self._source)
        if guard is True:
            from mesh.config import DEFAULT

            guard = replay_guard(DEFAULT)
        self._guard: ReplayGuard | None = guard if isinstance(guard, ReplayGuard) else None
        self._counter = itertools.count(1)
        self._kid, self._aes = self._ring.sealer(self._purpose)
        self._prefix = F.header(self._purpose, self._kid, b"")
        self._magic = self._prefix[:4]  # magic, version, purpose
        self._openers = self._ring.table(self._purpose)
        self._env = F.ENVELOPE_HEAD.pack(self.identity.sender, self.identity.epoch)
        self._entropy = b""
        self._at = 0

    @property
    def ring(self) -> KeyRing:
        return self._ring

    def _nonce(self) -> bytes:
        """12 fresh bytes; drawn from the source 4 KiB at a time (one call
        per 341 frames instead of one per frame)."""
        at = self._at
        if at + 12 > len(self._entropy):
            self._entropy, at = self._source.token_bytes(4092), 0
        self._at = at + 12
        return self._entropy[at:at + 12]

    # ------------------------------------------------------------------- seal
    def seal_body(self, body: Buffer) -> bytes:
        """Frame an already msgpack-encoded ``body``. Raises :class:`WireError`
        (``oversized``) if the frame would exceed the bound."""
        size = len(body) + F.OVERHEAD
        if size > self.max_size:
            raise WireError("oversized", f"{size} > {self.max_size} bytes")
        nonce = self._nonce()
        head = self._prefix + nonce
        env = self._env + _TAIL(next(self._counter), int(self._source.wall() * 1e6))
        if size <= 65536:
            return head + self._aes.encrypt(nonce, env + body, head)
        out = bytearray(size)  # large: encrypt straight into the frame
        out[:F.HEADER_LEN] = head
        self._aes.encrypt_into(nonce, env + body, head, memoryview(out)[F.HEADER_LEN:])
        return bytes(out)

    def seal(self, obj: Any) -> bytes:
        """Encode ``obj`` with msgpack and frame it."""
        return self.seal_body(msgpack.packb(obj, use_bin_type=True))

    # ------------------------------------------------------------------- open
    def _decrypt(self, frame: Buffer) -> bytes:
        n = len(frame)
        if n > self.max_size or n < F.OVERHEAD or frame[:4] != self._magic:
            F.check_header(frame, self._purpose, self.max_size, F.OVERHEAD)
        view = memoryview(frame)
        ciphers = self._openers.get(view[4:8].tobytes())
        if ciphers is not None and len(ciphers) == 1:
            try:
                return ciphers[0].decrypt(view[8:20], view[20:], view[:20])
            except InvalidTag:
                raise WireError("unauthenticated", "bad tag (wrong secret, or the frame was "
                                                   "altered)") from None
        plain = F.decrypt(self._ring, frame, self._purpose, F.HEADER_LEN)
        assert plain is not None
        return plain

    def open_body(self, frame: Buffer) -> memoryview:
        """Check one frame and return its body (msgpack bytes). Raises
        :class:`WireError` with reason ``oversized``, ``truncated``,
        ``malformed``, ``version``, ``purpose``, ``unknown_key``,
        ``unauthenticated``, ``stale`` or ``replay``; never anything else."""
        plain = self._decrypt(frame)
        if self._guard is not None:
            self._guard.check(*_ENVELOPE(plain), int(self._source.wall() * 1e6))
        return memoryview(plain)[F.ENVELOPE_LEN:]

    def verify(self, frame: Buffer) -> Any:
        """Raise what :meth:`open` would, and return the same, without
        remembering the frame as seen: for a gate that hands the frame on to
        its real reader, which opens it again."""
        plain = self._decrypt(frame)
        if self._guard is not None:
            sender, epoch, counter, stamp = F.ENVELOPE.unpack_from(plain)
            self._guard.peek(sender, epoch, counter, stamp, int(self._source.wall() * 1e6))
        return unpack(memoryview(plain)[F.ENVELOPE_LEN:])

    def open(self, frame: Buffer) -> Any:
        """Check and decode one frame (see :meth:`open_body` for the errors)."""
        return unpack(self.open_body(frame))

    # ---------------------------------------------------------------- streams
    def seal_stream(self, head: Any, buffers: Sequence[Buffer],
                    chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Seal a small ``head`` and large out-of-band ``buffers`` as a header
        frame followed by chunk frames of at most ``chunk_size`` bytes of
        data each. Chunks are encrypted straight from slices of the buffers
        (one copy, into the frame); no buffer is joined with another."""
        views = [memoryview(b).cast("B") for b in buffers]
        stream = self._source.token_bytes(8)
        sizes = [len(v) for v in views]
        yield self.seal({"h": head, "s": stream, "n": sizes})
        kid, aes = self._ring.sealer(PURPOSES["chunk"])
        pieces = [(v, a) for v in views for a in range(0, len(v), chunk_size)] or []
        for index, (view, start) in enumerate(pieces):
            data = view[start:start + chunk_size]
            flags = F.LAST if index == len(pieces) - 1 else 0
            nonce = self._nonce()
            aad = F.header(PURPOSES["chunk"], kid, nonce) + F.CHUNK_HEADER.pack(
                stream, index, flags)
            out = bytearray(len(aad) + len(data) + F.TAG_LEN)
            out[:len(aad)] = aad
            aes.encrypt_into(nonce, data, aad, memoryview(out)[len(aad):])
            yield bytes(out)

    def open_stream(self, frame: Buffer, max_total: int) -> StreamReader:
        """Open the header frame of a stream; feed its chunks to the reader.
        The buffers it declares may total at most ``max_total`` bytes."""
        msg = self.open(frame)
        if (type(msg) is not dict or type(msg.get("s")) is not bytes or len(msg["s"]) != 8
                or type(msg.get("n")) is not list
                or not all(type(n) is int and n >= 0 for n in msg["n"])):
            raise WireError("malformed", "not a stream header")
        if sum(msg["n"]) > max_total:
            raise WireError("oversized", f"a stream of {sum(msg['n'])} > {max_total} bytes")
        return StreamReader(self._ring, msg["h"], msg["s"], msg["n"])


class StreamReader:
    """Receives the chunks of one stream, in order, decrypting each straight
    into its place in a preallocated buffer. ``done`` once the last arrives."""

    __slots__ = ("_next", "_pos", "_ring", "_stream", "buffers", "done", "head", "sizes")

    def __init__(self, ring: KeyRing, head: Any, stream: bytes, sizes: list[int]) -> None:
        self._ring = ring
        self.head = head
        self._stream = stream
        self.sizes = sizes
        self.buffers = [bytearray(n) for n in sizes]
        self._next = 0
        self._pos = (0, 0)  # (buffer index, offset)
        self.done = all(n == 0 for n in sizes)

    def feed(self, frame: Buffer) -> bool:
        """Check and place one chunk frame; True once the stream is complete.
        Raises :class:`WireError` for a chunk that is not the next of this
        stream (``malformed``), too large (``oversized``) or forged."""
        if self.done:
            raise WireError("malformed", "a chunk after the end of its stream")
        purpose = PURPOSES["chunk"]
        F.check_header(frame, purpose, 1 << 62, F.CHUNK_OVERHEAD)
        stream, index, flags = F.CHUNK_HEADER.unpack_from(frame, F.HEADER_LEN)
        if stream != self._stream or index != self._next:
            raise WireError("malformed", "a chunk of another stream or out of order")
        b, off = self._pos
        while b < len(self.sizes) and off == self.sizes[b]:
            b, off = b + 1, 0
        n = len(memoryview(frame)) - F.CHUNK_OVERHEAD
        if b >= len(self.sizes) or off + n > self.sizes[b]:
            raise WireError("oversized", "a chunk beyond its buffer")
        F.decrypt(self._ring, frame, purpose, F.CHUNK_HEADER_LEN,
                  into=memoryview(self.buffers[b])[off:off + n])
        self._next += 1
        off += n
        self._pos = (b, off)
        complete = off == self.sizes[b] and not any(self.sizes[b + 1:])
        if flags & F.LAST:
            if not complete:
                raise WireError("truncated", "the last chunk came before the stream's end")
            self.done = True
        return self.done
