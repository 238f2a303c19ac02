"""The one frame format, below msgpack: header, AES-256-GCM, envelope.

Layout (all integers big-endian; see ``docs/wire.md``)::

    0   2  magic b"\\xc1M"   (0xc1 is never used by msgpack)
    2   1  version (2)
    3   1  purpose (1 datagram, 2 http, 3 channel, 4 chunk)
    4   4  key id of the secret that sealed it
    8  12  nonce (random, from the runtime)
   20   n  AES-256-GCM ciphertext of: envelope (32 bytes) + body
  20+n 16  GCM tag; the additional data is bytes 0-19

    envelope: sender id (8) | epoch, us (8) | counter (8) | timestamp, us (8)

A *chunk* frame (purpose 4) carries a piece of a large value streamed after a
header frame; it has no envelope, and its clear header grows by the stream id
(8 bytes), the chunk index (4) and a flags byte (1: last chunk), all covered
by the tag, so a chunk cannot move to another stream or position.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag

from mesh.errors import WireError
from mesh.wire._keys import PURPOSES, KeyRing

MAGIC = b"\xc1M"
VERSION = 2
HEADER_LEN = 20
TAG_LEN = 16
ENVELOPE = struct.Struct(">8sQQQ")
ENVELOPE_HEAD = struct.Struct(">8sQ")  # sender, epoch: fixed for a codec
ENVELOPE_TAIL = struct.Struct(">QQ")  # counter, timestamp: per frame
ENVELOPE_LEN = ENVELOPE.size
OVERHEAD = HEADER_LEN + ENVELOPE_LEN + TAG_LEN
"""Bytes a frame adds to its msgpack body (68)."""
CHUNK_HEADER = struct.Struct(">8sIB")
CHUNK_HEADER_LEN = HEADER_LEN + CHUNK_HEADER.size
CHUNK_OVERHEAD = CHUNK_HEADER_LEN + TAG_LEN
"""Bytes a chunk frame adds to its data (49)."""
LAST = 1

_PREFIX = MAGIC + bytes([VERSION])


def header(purpose: int, key_id: bytes, nonce: bytes) -> bytes:
    return _PREFIX + bytes([purpose]) + key_id + nonce


def check_header(frame: bytes | memoryview, purpose: int, max_size: int, minimum: int) -> None:
    """Size, magic, version and purpose, before any cryptography."""
    n = len(frame)
    if n > max_size:
        raise WireError("oversized", f"{n} > {max_size} bytes")
    if n < minimum:
        raise WireError("truncated", f"{n} bytes")
    if frame[:2] != MAGIC:
        raise WireError("malformed", "bad magic")
    if frame[2] != VERSION:
        raise WireError("version", f"wire version {frame[2]}, we speak {VERSION}")
    if frame[3] != purpose:
        names = {v: k for k, v in PURPOSES.items()}
        raise WireError("purpose", f"a {names.get(frame[3], frame[3])} frame where a "
                                   f"{names[purpose]} frame belongs")


def decrypt(ring: KeyRing, frame: bytes | memoryview, purpose: int, aad_len: int,
            into: memoryview | bytearray | None = None) -> bytes | None:
    """Authenticate and decrypt ``frame`` with whichever of our keys its key id
    names. Returns the plaintext, or writes it to ``into`` (returning None)."""
    view = memoryview(frame)
    kid = bytes(view[4:8])
    ciphers = ring.openers(purpose, kid)
    if not ciphers:
        raise WireError("unknown_key", f"key id {kid.hex()} is none of our secrets'")
    nonce, aad, data = view[8:20], view[:aad_len], view[aad_len:]
    for aes in ciphers:
        try:
            if into is None:
                return aes.decrypt(nonce, data, aad)
            aes.decrypt_into(nonce, data, aad, into)
            return None
        except InvalidTag:
            continue
    raise WireError("unauthenticated", "bad tag (wrong secret, or the frame was altered)")
