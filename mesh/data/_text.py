"""Text input and output: ``read_text`` blocks and ``to_text`` files.

``read_text`` lists the files and their sizes when it is called (so a path
that matches nothing raises ``FileNotFoundError`` at once) and makes one
partition per block of ``blocksize`` bytes. The block's task reads it on the
node that runs it, as Spark and Dask do: give a path every node can see (a
local mesh, or a shared filesystem). A block starts at the first line that
begins at or after its offset and ends with the line that holds its last
byte, so every line belongs to exactly one block. Lines lose their ``\\n``
(and a ``\\r`` before it), as in Spark. The encoding must keep ``\\n`` as
the byte ``0x0A`` (UTF-8, Latin-1, ASCII and the like).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from typing import Any

from mesh.data._plan import Part

__all__ = ["expand_paths", "read_block", "text_parts", "write_text"]


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files named by a path, a glob or a list of either, in order; raises
    ``FileNotFoundError`` naming an entry that matches nothing."""
    if isinstance(paths, (str, os.PathLike)):
        entries = [os.fspath(paths)]
    else:
        entries = [os.fspath(p) for p in paths]
        if not entries:
            raise ValueError("read_text: give at least one path")
    files: list[str] = []
    for entry in entries:
        if glob.has_magic(entry):
            found = sorted(p for p in glob.glob(entry) if os.path.isfile(p))
        elif os.path.isdir(entry):
            found = sorted(os.path.join(entry, f) for f in os.listdir(entry)
                           if os.path.isfile(os.path.join(entry, f)))
        else:
            found = [entry] if os.path.isfile(entry) else []
        if not found:
            raise FileNotFoundError(f"read_text: no file matches {entry!r}")
        files += [os.path.abspath(p) for p in found]
    return files


def text_parts(files: list[str], blocksize: int, encoding: str) -> list[Part]:
    parts = []
    for path in files:
        size = os.path.getsize(path)
        for start in range(0, max(size, 1), blocksize):
            parts.append(Part(read_block, (path, start, min(start + blocksize, size), encoding)))
    return parts


def read_block(path: str, start: int, end: int, encoding: str) -> list[str]:
    """The lines of ``path`` that begin in bytes ``[start, end)``."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # the line holding byte start - 1 belongs to the block before
        pos = f.tell()
        if pos >= end:
            return []
        data = f.read(end - pos)
        if not data.endswith(b"\n"):
            data += f.readline()
    text = data.decode(encoding)
    if text.endswith("\n"):
        text = text[:-1]
    lines = text.split("\n")
    if "\r" in text:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


def write_text(items: Iterator[Any], directory: str, index: int, encoding: str) -> str:
    """Write one partition as ``part-NNNNN.txt`` (a line per item, ``str``
    of it); returns the file's path. Runs on the node of the task."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"part-{index:05d}.txt")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding=encoding, newline="\n") as f:
        for item in items:
            f.write(f"{item}\n")
    os.replace(tmp, path)
    return path
