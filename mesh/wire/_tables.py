"""A large table packed a slice of rows per event-loop turn.

A push-pull exchange and ``/v1/members`` carry the whole member table: at
10,000 members msgpack takes about 10 ms for it, one loop turn if packed at
once. :func:`pack_table` packs ``step`` rows per turn (awaiting ``turn``, the
runtime's ``sleep(0)``, between slices) and gives exactly the bytes
``msgpack.packb({**head, key: rows})`` gives; a table of at most ``step`` rows
is packed without yielding, so small meshes run as if packed at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgpack

__all__ = ["pack_table"]


async def pack_table(head: dict[str, Any], key: str, rows: Sequence[Any], step: int,
                     turn: Callable[[], Awaitable[None]],
                     each: Callable[[Any], Any] | None = None) -> bytes:
    """The msgpack encoding of ``{**head, key: rows}`` (each row passed
    through ``each`` first, if given), ``step`` rows per turn. ``rows`` must
    not change while this runs (pass a snapshot)."""
    if key in head:
        raise ValueError(f"{key!r} is both a head field and the table's key")
    if len(rows) <= step:
        table = rows if each is None else list(map(each, rows))
        return msgpack.packb({**head, key: table}, use_bin_type=True)
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_map_header(len(head) + 1)]
    for k, v in head.items():
        parts += (packer.pack(k), packer.pack(v))
    parts += (packer.pack(key), packer.pack_array_header(len(rows)))
    pack = packer.pack
    for i in range(0, len(rows), step):
        if i:
            await turn()
        chunk = rows[i:i + step]
        parts.append(b"".join(map(pack, chunk if each is None else map(each, chunk))))
    return b"".join(parts)
