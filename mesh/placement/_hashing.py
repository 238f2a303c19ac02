"""Stable hashes for placement: the same bytes in, the same integers out, on
every process, machine and Python version.

Nothing here uses :func:`hash` (salted per process) or any iteration order of
a set. Vnode positions come from SHAKE-128 (one call yields all of a member's
positions) and key probes from BLAKE2b; both are fixed standards that
:mod:`hashlib` always provides.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from functools import cache

__all__ = [
    "KEY_PERSON",
    "MAX_PROBES",
    "key_bytes",
    "key_probes",
    "probe_unpacker",
    "vnode_positions",
]

#: Domain separation, so placement hashes never collide with other uses of
#: the same names or keys elsewhere in the mesh.
_VNODE_DOMAIN = b"mesh.placement.vnode\x00"
KEY_PERSON = b"mesh.placement"  # BLAKE2b personalisation (at most 16 bytes)

#: BLAKE2b gives at most 64 bytes of digest: eight 64-bit probes per key.
MAX_PROBES = 8


def key_bytes(key: str | bytes) -> bytes:
    """The bytes a key is hashed as: UTF-8 for ``str``, as-is for ``bytes``.

    ``"a"`` and ``b"a"`` are therefore the same key.
    """
    if type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    raise TypeError(f"placement keys are str or bytes, not {type(key).__name__}")


def vnode_positions(name: str, count: int) -> tuple[int, ...]:
    """``count`` 64-bit ring positions of the member called ``name``.

    The positions for ``count`` are a prefix of those for any larger count, so
    raising a member's weight only adds vnodes and never moves existing ones.
    """
    data = hashlib.shake_128(_VNODE_DOMAIN + name.encode("utf-8")).digest(8 * count)
    return struct.unpack(f">{count}Q", data)


@cache
def probe_unpacker(probes: int) -> tuple[int, Callable[[bytes], tuple[int, ...]]]:
    """``(digest_size, unpack)`` turning a key's BLAKE2b digest into ``probes``
    64-bit probe positions (``unpack`` is a bound :meth:`struct.Struct.unpack`)."""
    if not 1 <= probes <= MAX_PROBES:
        raise ValueError(f"probes must be within 1..{MAX_PROBES}, got {probes}")
    return 8 * probes, struct.Struct(f">{probes}Q").unpack


def key_probes(key: str | bytes, probes: int) -> tuple[int, ...]:
    """The ``probes`` 64-bit probe positions of ``key`` (slow path; the ring
    inlines the same computation)."""
    size, unpack = probe_unpacker(probes)
    return unpack(hashlib.blake2b(key_bytes(key), digest_size=size, person=KEY_PERSON).digest())
