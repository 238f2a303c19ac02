"""The HMAC-SHA256 framing mesh used before its AES-256-GCM frames (wire
version 1), kept verbatim so ``python -m bench.wire`` measures the new frames
against it in the same run. Nothing in mesh imports this.

A frame is ``MAGIC | VERSION | HMAC-SHA256(key, MAGIC | VERSION | body) | body``
where ``body`` is msgpack. The same frame carries UDP datagrams, HTTP bodies
and websocket messages. :meth:`Codec.open` checks, in this order, the size, the
magic and version, the MAC (in constant time) and only then parses msgpack with
limits, so nothing unauthenticated is ever parsed, let alone unpickled.

The key is derived from the cluster secret. With no secret (allowed on
loopback only) the key is a fixed public constant: frames are still checked for
integrity and garbage is rejected, but anyone on the host can forge them.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import msgpack

from mesh.errors import WireError

MAGIC = b"\xc1M"  # 0xc1 is never used by msgpack, so a bare msgpack body is rejected
VERSION = 1
_HEADER = MAGIC + bytes([VERSION])
MAC_LEN = 32
OVERHEAD = len(_HEADER) + MAC_LEN
"""Bytes a frame adds to its msgpack body."""


def derive_key(secret: bytes | None) -> bytes:
    """The HMAC key for a cluster secret (``None`` or empty: no secret)."""
    return hashlib.sha256(b"mesh-wire-v1\x00" + (secret or b"")).digest()


def _no_ext(code: int, data: bytes) -> Any:
    raise WireError("malformed", f"msgpack extension type {code} is not allowed")


class Codec:
    """Seals and opens frames with one key and one size bound.

    Stateless apart from its settings; safe to share between tasks.
    """

    __slots__ = ("_key", "max_size")

    def __init__(self, secret: bytes | None, max_size: int) -> None:
        self._key = derive_key(secret)
        self.max_size = max_size

    def seal_body(self, body: bytes) -> bytes:
        """Frame an already msgpack-encoded ``body``. Raises :class:`WireError`
        (``oversized``) if the frame would exceed the bound."""
        if len(body) + OVERHEAD > self.max_size:
            raise WireError("oversized", f"{len(body) + OVERHEAD} > {self.max_size} bytes")
        mac = hmac.digest(self._key, _HEADER + body, "sha256")
        return _HEADER + mac + body

    def seal(self, obj: Any) -> bytes:
        """Encode ``obj`` with msgpack and frame it."""
        return self.seal_body(msgpack.packb(obj, use_bin_type=True))

    def open(self, frame: bytes) -> Any:
        """Check and decode one frame. Raises :class:`WireError` with reason
        ``oversized``, ``truncated``, ``version``, ``unauthenticated`` or
        ``malformed``; never anything else."""
        if len(frame) > self.max_size:
            raise WireError("oversized", f"{len(frame)} > {self.max_size} bytes")
        if len(frame) < OVERHEAD + 1:
            raise WireError("truncated", f"{len(frame)} bytes")
        if frame[:2] != MAGIC:
            raise WireError("malformed", "bad magic")
        if frame[2] != VERSION:
            raise WireError("version", f"wire version {frame[2]}, we speak {VERSION}")
        body = frame[OVERHEAD:]
        expected = hmac.digest(self._key, frame[:3] + body, "sha256")
        if not hmac.compare_digest(expected, frame[3:OVERHEAD]):
            raise WireError("unauthenticated", "bad MAC (wrong or missing secret?)")
        try:
            return msgpack.unpackb(
                body,
                raw=False,
                strict_map_key=True,
                ext_hook=_no_ext,
            )
        except WireError:
            raise
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            # msgpack signals bad input with these (ExtraData, FormatError and
            # StackError are ValueError subclasses; bad UTF-8 is a ValueError).
            raise WireError("malformed", f"{type(exc).__name__}: {exc}") from None
