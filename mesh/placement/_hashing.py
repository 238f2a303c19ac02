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
from typing import Any

__all__ = [
    "KEY_PERSON",
    "MAX_PROBES",
    "key_bytes",
    "probe_hashing",
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
def probe_hashing(probes: int) -> tuple[Any, Callable[[bytes], tuple[int, ...]]]:
    """``(template, unpack)`` for keys hashed to ``probes`` probes: a fresh
    BLAKE2b object (``template.copy()``, then ``update(key)``) whose digest
    ``unpack`` turns into ``probes`` 64-bit words. Copying a prepared object is
    cheaper than passing the parameters for every key."""
    if isinstance(probes, bool) or not isinstance(probes, int) or not 1 <= probes <= MAX_PROBES:
        raise ValueError(f"probes must be an int within 1..{MAX_PROBES}, got {probes!r}")
    template = hashlib.blake2b(digest_size=8 * probes, person=KEY_PERSON)
    return template, struct.Struct(f">{probes}Q").unpack
