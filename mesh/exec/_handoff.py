"""Values between a node and the processes that run its tasks, without pipe
copies.

A worker serializes a result with :func:`mesh.store.dumps`. When its
out-of-band buffers total at least ``Config.oob_threshold`` it writes the value
straight into the node's spill directory (:meth:`mesh.store.FileSpillDir.write`:
the spill-file layout, a ``.part`` name renamed when complete) and reports only
the file's name and segment sizes; the node maps the file
(:func:`adopt_result`) and gets an ``OK_VALUE`` outcome whose ``Value.source``
is that name. Smaller results keep the ``OK_MSGPACK`` / ``OK_PICKLE`` kinds.

Inputs go the other way: a dependency ``[OK_VALUE, Value]`` reaches the worker
as the name of its spill file, which the worker maps read-only and
:func:`mesh.store.loads` on top of (numpy arrays become views of the page
cache, read-only as Ray's are). See :func:`load_dep` for every shape.

Both :mod:`mesh.exec._worker` and ``sim.executor`` encode results here, so the
real and simulated executors keep one contract.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import shutil
from dataclasses import replace
from typing import Any

import msgpack

from mesh.protocol import payload as P
from mesh.protocol.payload import _SCALARS as _PIPE_SCALARS
from mesh.store import SerializationError, SpillDir, Value, dumps, loads
from mesh.store._serialize import PICKLE, _Pickler

__all__ = ["InputFiles", "adopt_result", "encode_result", "failed", "load_dep", "write_result"]


def failed(text: str) -> tuple[int, bytes]:
    """A ``FAILED`` result: the client raises ``TaskFailed(text)``."""
    return P.FAILED, text.encode()


def unpicklable(tid: str, exc: BaseException, obj: Any) -> tuple[int, bytes]:
    err = exc if isinstance(exc, SerializationError) else SerializationError(obj, exc)
    return failed(f"the result of task {tid!r} cannot be returned: {err}; return something "
                  "picklable (close files, locks and sockets; hand over their contents)")


def encode_result(tid: str, obj: Any, threshold: int | None) -> tuple[int, bytes] | Value:
    """A task's return value as ``(kind, payload)`` for the pipe or, when
    ``threshold`` is given and its out-of-band buffers total at least that,
    as a :class:`Value` to hand over through a file. An unpicklable value
    gives ``FAILED`` naming its type."""
    small_bytes = type(obj) is not bytes or threshold is None or len(obj) < threshold
    if threshold is None or (type(obj) in _PIPE_SCALARS and small_bytes):
        try:
            return P.dumps_value(obj)
        except Exception as exc:  # any object may fail to pickle in any way
            return unpicklable(tid, exc, obj)
    try:
        header, buffers = dumps(obj)
    except SerializationError as exc:
        return unpicklable(tid, exc, obj)
    if sum(b.nbytes for b in buffers) >= threshold:
        return Value(header, tuple(buffers))
    if not buffers:
        _version, kind, stream, _sizes = msgpack.unpackb(header, raw=False)
        if kind == PICKLE:
            return P.OK_PICKLE, stream  # a plain pickle stream: no second pickling
    stream = io.BytesIO()  # small buffers: pickled again, in band, for one message
    _Pickler(stream, protocol=5).dump(obj)
    return P.OK_PICKLE, stream.getvalue()


def _room(spill: SpillDir) -> str:
    capacity = getattr(spill, "capacity", None)
    if capacity is not None:
        return f"its limit is {capacity} bytes"
    try:
        usage = shutil.disk_usage(spill.path)
    except OSError:
        return "its free space is unknown"
    return f"its file system has {usage.free} of {usage.total} bytes free"


def write_failure(spill: SpillDir, nbytes: int, exc: OSError) -> str:
    """Why a write of ``nbytes`` into ``spill`` failed: the directory and its limit."""
    why = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno == errno.ENOSPC:
        why = "the disk is full"
    return (f"{nbytes} bytes could not be written to this node's spill directory "
            f"{spill.path}: {why}; {_room(spill)}. Release values you no longer need, "
            "or give the node more disk (--spill-dir)")


def write_result(tid: str, spill: SpillDir, name: str, value: Value) -> tuple[int, Any]:
    """Write ``value`` as spill file ``name``: ``(OK_VALUE, [name, sizes])``,
    or ``FAILED`` naming the directory and its limit when the write fails
    (nothing is left under ``name``; a ``.part`` left by a process killed
    mid-write is never counted as a value)."""
    try:
        spill.write(name, value)
    except OSError as exc:
        why = write_failure(spill, value.nbytes, exc)
        return failed(f"the result of task {tid!r} is lost: {why}")
    return P.OK_VALUE, [name, list(value.sizes)]


def adopt_result(tid: str, spill: SpillDir, name: str, sizes: list[int]) -> tuple[int, Any]:
    """The node's side of :func:`write_result`: map file ``name`` as an
    ``OK_VALUE`` outcome's :class:`Value` (``source`` is ``name``)."""
    try:
        value = spill.read(name)
    except (OSError, ValueError) as exc:
        return failed(f"the result of task {tid!r} was lost: its spill file {name} in "
                      f"{spill.path} cannot be read: {exc}")
    if list(value.sizes) != list(sizes):
        spill.delete(name)
        return failed(f"the result of task {tid!r} was lost: its spill file {name} in "
                      f"{spill.path} holds segments of {list(value.sizes)} bytes, not {sizes}")
    return P.OK_VALUE, replace(value, source=name)


def load_dep(kind: int, payload: Any, spill: SpillDir | None) -> Any:
    """The value of one dependency as a worker receives it: ``[OK_MSGPACK |
    OK_PICKLE, bytes]``, or ``OK_VALUE`` with the name of a spill file (``str``;
    mapped, not copied), a list ``[header, *buffers]`` (inline through the pipe,
    when the node has no spill directory), or a :class:`Value` (the simulator)."""
    if kind != P.OK_VALUE:
        return P.loads_value(kind, payload)
    if isinstance(payload, Value):
        return loads(payload.header, payload.buffers)
    if isinstance(payload, str):
        if spill is None:
            raise ValueError(f"input file {payload} given to a worker without a spill directory")
        value = spill.read(payload)
        return loads(value.header, value.buffers)
    return loads(payload[0], payload[1:])


class Staged:
    """A memory-only input value written to a spill file for workers to map."""

    __slots__ = ("name", "refs", "value", "written")

    def __init__(self, value: Value, name: str) -> None:
        self.value = value
        self.name = name
        self.refs = 0
        self.written: asyncio.Future[str | None] | None = None
        """Resolves to None once the file is complete, or to why it is not."""


class InputFiles:
    """Memory-only :class:`Value` inputs, each written once (in a thread, off
    the event loop) as ``prefix<n>`` in the spill directory while jobs in
    flight need it, and deleted when the last of them is done."""

    def __init__(self, spill: SpillDir, prefix: str) -> None:
        self._spill = spill
        self._prefix = prefix
        self._held: dict[int, Staged] = {}  # by id(value); the entry keeps the value alive
        self._count = 0

    def hold(self, value: Value) -> Staged:
        staged = self._held.get(id(value))
        if staged is None:
            staged = self._held[id(value)] = Staged(value, f"{self._prefix}{self._count}")
            self._count += 1
        staged.refs += 1
        return staged

    async def ready(self, held: list[Staged]) -> str | None:
        """Wait until every file of ``held`` is written; why one is not, or None."""
        loop = asyncio.get_running_loop()
        for staged in held:
            if staged.written is None:
                staged.written = loop.run_in_executor(None, self._write, staged)
        for staged in held:
            why = await staged.written  # type: ignore[misc]
            if why is not None:
                return why
        return None

    def _write(self, staged: Staged) -> str | None:
        try:
            self._spill.write(staged.name, staged.value)
        except OSError as exc:
            return write_failure(self._spill, staged.value.nbytes, exc)
        return None

    def release(self, held: list[Staged]) -> None:
        for staged in held:
            staged.refs -= 1
            if staged.refs == 0 and self._held.get(id(staged.value)) is staged:
                del self._held[id(staged.value)]
                self._delete(staged)

    def _delete(self, staged: Staged) -> None:
        if staged.written is None:
            return
        if staged.written.done():
            self._spill.delete(staged.name)
        else:  # still being written: delete it when the write ends
            staged.written.add_done_callback(lambda _f: self._spill.delete(staged.name))

    def close(self) -> None:
        """Delete every input file (the executor stops)."""
        for staged in self._held.values():
            self._delete(staged)
        self._held.clear()

    def __len__(self) -> int:
        return len(self._held)
