"""Partitioned datasets on the mesh: the seed's word count.

.. code-block:: python

    lines = client.read_text("logs/*.txt", blocksize="64MiB")
    counts = (lines.flat_map(str.split)
                   .map(lambda w: (w, 1))
                   .reduce_by_key(operator.add))        # lazy
    counts.top(10, key=lambda kv: kv[1])               # an action runs it

Built on the task layer alone: a partition is a task result under its own
key (so placement owns it, it is replicated and recomputed like any task),
narrow transformations fuse into one task per partition
(:mod:`mesh.data._plan`), a shuffle is map tasks and reduce tasks that take
the map tasks' futures (:mod:`mesh.data._shuffle`), text comes in and goes
out on the nodes (:mod:`mesh.data._text`). Until the data plane is wired in,
a materialized partition or a shuffle map task's output is one task result,
at most ``MAX_PARTITION_BYTES`` (``Config.data_partition_bytes``, 4 MiB).
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterable
from typing import Any

from mesh.data._dataset import Dataset
from mesh.data._plan import MAX_PARTITION_BYTES, Part, identity
from mesh.data._shuffle import partition_of

__all__ = ["MAX_PARTITION_BYTES", "Dataset", "from_sequence", "partition_of", "read_text"]

_TARGET_PARTITION_BYTES = 1024 * 1024
"""``from_sequence`` without ``npartitions`` aims at about 1 MiB of pickled
items per partition: a quarter of the limit, and small enough to spread."""


def from_sequence(client: Any, iterable: Iterable[Any], npartitions: int | None = None
                  ) -> Dataset:
    """A dataset of the items of ``iterable`` (read now, on the client), in
    ``npartitions`` contiguous partitions of near-equal length."""
    items = list(iterable)
    if npartitions is None:
        size = len(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))
        npartitions = max(1, min(len(items), math.ceil(size / _TARGET_PARTITION_BYTES)))
    elif isinstance(npartitions, bool) or not isinstance(npartitions, int):
        raise TypeError(f"from_sequence: npartitions must be an int, "
                        f"not {type(npartitions).__name__}")
    elif npartitions < 1:
        raise ValueError(f"from_sequence: npartitions must be at least 1, not {npartitions}")
    n, extra = divmod(len(items), npartitions)
    parts, start = [], 0
    for i in range(npartitions):
        end = start + n + (1 if i < extra else 0)
        chunk = items[start:end]
        size = len(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
        if size > MAX_PARTITION_BYTES:
            raise ValueError(
                f"from_sequence: partition {i} would be {size:,} bytes, over the "
                f"{MAX_PARTITION_BYTES:,}-byte limit (Config.data_partition_bytes) of a "
                f"task's arguments; give more partitions (npartitions={npartitions} now)")
        parts.append(Part(identity, (chunk,)))
        start = end
    return Dataset(client, f"from_sequence(<{len(items)} items>)", npartitions, (),
                   lambda plan: parts)


def read_text(client: Any, paths: str | os.PathLike[str] | Iterable[str],
              blocksize: int | str = "64MiB", encoding: str = "utf-8") -> Dataset:
    """A dataset of the lines of text files: one partition per block of
    ``blocksize`` bytes (an int or text such as ``"64MiB"``), read by the
    node that runs the block's task. ``FileNotFoundError`` now if a path,
    glob or list entry matches nothing."""
    from mesh.data._text import expand_paths, text_parts

    if isinstance(blocksize, str):
        from mesh.store._size import parse_size

        blocksize = parse_size(blocksize, total=0, option="read_text: blocksize")
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise ValueError(f"read_text: blocksize must be a positive size, not {blocksize!r}")
    if not isinstance(encoding, str):
        raise TypeError(f"read_text: encoding must be a str, not {type(encoding).__name__}")
    "".encode(encoding)  # LookupError now for an unknown encoding
    files = expand_paths(paths)
    parts = text_parts(files, blocksize, encoding)
    shown = paths if isinstance(paths, str) else [os.fspath(p) for p in paths]
    return Dataset(client, f"read_text({shown!r}, blocksize={blocksize})", len(parts), (),
                   lambda plan: parts)
