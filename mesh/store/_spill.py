"""Where spilled values go: the :class:`SpillDir` interface, files in a
directory (:class:`FileSpillDir`) and a dictionary (:class:`MemorySpillDir`,
for tests and the simulator). ``tests/test_store.py`` runs one suite
against both.

File layout (one file per value, named by the store)::

    b"MESHSPL1" | u32 segment count | u64 size of each segment | zero padding
    | header | padding | buffer 0 | padding | buffer 1 | ...

Every segment starts on a 64-byte boundary, so an array read back through
``mmap`` is as aligned as numpy makes its own. Files are written under a
``.part`` name and renamed when complete: a half-written file is never read.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Sequence
from typing import Protocol

from mesh.store._values import Buffer, Value

MAGIC = b"MESHSPL1"
ALIGN = 64
_COUNT = struct.Struct("<I")
_SIZE = struct.Struct("<Q")


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def layout(sizes: Sequence[int]) -> tuple[int, list[int]]:
    """``(file size, offset of each segment)`` for segments of ``sizes``."""
    pos = _aligned(len(MAGIC) + _COUNT.size + _SIZE.size * len(sizes))
    offsets = []
    for size in sizes:
        offsets.append(pos)
        pos = _aligned(pos + size)
    return pos, offsets


def preamble(sizes: Sequence[int]) -> bytes:
    head = MAGIC + _COUNT.pack(len(sizes)) + b"".join(_SIZE.pack(s) for s in sizes)
    return head + bytes(_aligned(len(head)) - len(head))


class SpillDir(Protocol):
    """Storage for spilled values. ``path`` is named in error messages."""

    path: str

    def write(self, name: str, value: Value) -> None:
        """Store ``value`` as ``name``, from its buffers as they are (never
        joined into one bytes object). Raises ``OSError`` (``ENOSPC`` when
        full); then nothing is left under ``name``."""

    def read(self, name: str) -> Value:
        """The value stored as ``name``; its buffers are read-only views.
        Raises ``FileNotFoundError`` for an unknown name."""

    def delete(self, name: str) -> None:
        """Forget ``name``; a name that is not there is ignored."""

    def names(self) -> list[str]:
        """Names of the complete values stored, sorted."""

    def close(self) -> None:
        """Delete every value (and the directory, if this object made it)."""


def _write_all(fd: int, data: Buffer | bytes) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _reserve(fd: int, size: int) -> None:
    """Allocate the file's blocks up front, so a full disk fails the write
    before any byte is copied and never half-way through a large value."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
            raise


class FileSpillDir:
    """One file per value in ``path``; read back by memory-mapping the file,
    so a reader (later: a worker process) can use the bytes without a copy."""

    def __init__(self, path: str, *, owned: bool = False) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self._owned = owned

    @classmethod
    def temporary(cls, prefix: str = "mesh-spill-") -> FileSpillDir:
        """A new temporary directory, removed by :meth:`close`."""
        return cls(tempfile.mkdtemp(prefix=prefix), owned=True)

    def file(self, name: str) -> str:
        """The path of value ``name``."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad spill file name {name!r}")
        return os.path.join(self.path, name)

    def write(self, name: str, value: Value) -> None:
        final = self.file(name)
        part = final + ".part"
        segments = value.segments()
        size, offsets = layout([s.nbytes for s in segments])
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _reserve(fd, size)
            pos = 0
            head = preamble([s.nbytes for s in segments])
            _write_all(fd, head)
            pos = len(head)
            for seg, offset in zip(segments, offsets, strict=True):
                if offset > pos:
                    _write_all(fd, bytes(offset - pos))
                _write_all(fd, seg)
                pos = offset + seg.nbytes
            if size > pos:
                _write_all(fd, bytes(size - pos))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
            raise
        os.close(fd)
        os.replace(part, final)

    def read(self, name: str) -> Value:
        with open(self.file(name), "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mm)
        if view[:len(MAGIC)] != MAGIC:
            raise OSError(errno.EIO, f"{name} in {self.path} is not a spill file")
        (count,) = _COUNT.unpack_from(view, len(MAGIC))
        sizes = [_SIZE.unpack_from(view, len(MAGIC) + _COUNT.size + _SIZE.size * i)[0]
                 for i in range(count)]
        total, offsets = layout(sizes)
        if total != view.nbytes:
            raise OSError(errno.EIO, f"{name} in {self.path} is {view.nbytes} bytes, not {total}")
        segs = [view[o:o + s] for o, s in zip(offsets, sizes, strict=True)]
        return Value(bytes(segs[0]), tuple(segs[1:]))

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.file(name))

    def names(self) -> list[str]:
        return sorted(n for n in os.listdir(self.path) if not n.endswith(".part"))

    def close(self) -> None:
        if self._owned:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            for name in os.listdir(self.path):
                self.delete(name)


class MemorySpillDir:
    """Spilled values kept as bytes in a dictionary. ``capacity`` (bytes)
    makes :meth:`write` fail with ``ENOSPC`` like a full disk."""

    def __init__(self, capacity: int | None = None, path: str = "<memory>") -> None:
        self.path = path
        self.capacity = capacity
        self._values: dict[str, tuple[bytes, tuple[bytes, ...]]] = {}
        self.used = 0

    def write(self, name: str, value: Value) -> None:
        if self.capacity is not None and self.used + value.nbytes > self.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)
        self.delete(name)
        self._values[name] = (bytes(value.header), tuple(bytes(b) for b in value.buffers))
        self.used += value.nbytes

    def read(self, name: str) -> Value:
        try:
            header, buffers = self._values[name]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, f"no spilled value {name}", self.path) from None
        return Value(header, tuple(memoryview(b) for b in buffers))

    def delete(self, name: str) -> None:
        old = self._values.pop(name, None)
        if old is not None:
            self.used -= len(old[0]) + sum(len(b) for b in old[1])

    def names(self) -> list[str]:
        return sorted(self._values)

    def close(self) -> None:
        self._values.clear()
        self.used = 0
