"""Serialization without copies: pickle protocol 5 with out-of-band buffers.

``dumps(obj)`` returns ``(header, buffers)``. The header is msgpack and small:
``[version, kind, payload, buffer sizes]``, where ``payload`` is the value
itself for plain scalars (``MSGPACK``) or a pickle stream (``PICKLE``). The
buffers are views of the object's own memory: numpy arrays (and so pandas
frames), ``bytes``, ``bytearray`` and ``memoryview`` of at least
``INBAND_LIMIT`` bytes travel as themselves, never copied into the stream.
``loads(header, buffers)`` rebuilds the value on top of the given buffers:
an array comes back as a view of them (read-only when they are).

``bytes`` is the one type rebuilt with a copy (a ``bytes`` object cannot wrap
foreign memory). Large ``bytes`` travel out of band when they are the value or
sit in a list, tuple, set or dict within two levels of it (see
:class:`_BytesPickler` for why not deeper).

Only authenticated input may reach :func:`loads`: unpickling runs code.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from itertools import islice
from typing import Any

import cloudpickle
import msgpack

from mesh.errors import MeshError

VERSION = 1
MSGPACK = 0
PICKLE = 1
PICKLED = 2
"""A whole pickle stream (in-band buffers) as the one buffer: a result a
worker pickled with ``cloudpickle.dumps`` and the node keeps as a Value."""
INBAND_LIMIT = 1024
"""Buffers smaller than this stay inside the pickle stream: a separate buffer
costs a chunk boundary and a length, more than copying a few hundred bytes."""

_SCALARS = frozenset({int, float, str, bool, type(None)})


class SerializationError(MeshError, TypeError):
    """A value could not be pickled; the message names its type and what
    inside it failed. Return or pass something picklable (close files,
    locks and sockets; hand over their contents instead)."""

    def __init__(self, obj: Any, cause: BaseException) -> None:
        t = type(obj)
        self.type_name = f"{t.__module__}.{t.__qualname__}"
        super().__init__(f"cannot serialize a value of type {self.type_name}: "
                         f"{type(cause).__name__}: {cause}")


def _memoryview_from(buf: Any, fmt: str, shape: Sequence[int]) -> memoryview:
    view = memoryview(buf).cast("B")
    return view if fmt == "B" and len(shape) == 1 else view.cast(fmt, tuple(shape))


class _Pickler(cloudpickle.Pickler):
    """Sends ``memoryview`` objects out of band (plain pickle refuses them)."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is memoryview:
            data = pickle.PickleBuffer(obj) if obj.contiguous else obj.tobytes()
            return _memoryview_from, (data, obj.format, obj.shape)
        return super().reducer_override(obj)


class _BytesPickler(_Pickler):
    """Also sends large ``bytes`` out of band. The C pickler writes ``bytes``
    before it asks ``reducer_override``; only ``persistent_id`` sees them, and
    it is asked for every object (a list of a million ints pickles 9 times
    slower), so :func:`dumps` uses this pickler only when a shallow look
    finds large ``bytes``."""

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) is bytes and len(obj) >= INBAND_LIMIT:
            return ("b", pickle.PickleBuffer(obj))
        return None


_SCAN_ITEMS = 1000
"""How many items of a list, tuple, set or dict :func:`_has_large_bytes`
looks at. Larger bytes deeper inside, or past these items, travel in band."""


def _has_large_bytes(obj: Any, depth: int = 2) -> bool:
    t = type(obj)
    if t is bytes:
        return len(obj) >= INBAND_LIMIT
    if depth == 0:
        return False
    if t is dict:
        items: Any = obj.values()
    elif t in (list, tuple, set, frozenset):
        items = obj
    else:
        return False
    return any(_has_large_bytes(item, depth - 1) for item in islice(items, _SCAN_ITEMS))


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        if pid[0] == "b":
            return bytes(pid[1])
        raise pickle.UnpicklingError(f"unknown persistent id {pid[0]!r}")


def dumps(obj: Any) -> tuple[bytes, list[memoryview]]:
    """``(header, buffers)`` for ``obj``; raises :class:`SerializationError`
    naming the type when it cannot be pickled."""
    if type(obj) in _SCALARS:
        try:
            return msgpack.packb([VERSION, MSGPACK, obj, []], use_bin_type=True), []
        except (OverflowError, ValueError):
            pass  # an int beyond 64 bits
    buffers: list[memoryview] = []

    def take(pb: pickle.PickleBuffer) -> bool:
        try:
            raw = pb.raw()
        except BufferError:  # not contiguous: pickle copies it in band
            return True
        if raw.nbytes < INBAND_LIMIT:
            return True
        buffers.append(raw)
        return False

    stream = io.BytesIO()
    try:
        pickler = _BytesPickler if _has_large_bytes(obj) else _Pickler
        pickler(stream, protocol=5, buffer_callback=take).dump(obj)
    except Exception as exc:  # any object may fail to pickle in any way
        raise SerializationError(obj, exc) from exc
    header = msgpack.packb([VERSION, PICKLE, stream.getbuffer(), [b.nbytes for b in buffers]],
                           use_bin_type=True)
    return header, buffers


def loads(header: bytes, buffers: Sequence[memoryview | bytes | bytearray] = ()) -> Any:
    """The value :func:`dumps` described; raises ``ValueError`` when the
    header is not ours or does not match the buffers."""
    try:
        version, kind, payload, sizes = msgpack.unpackb(header, raw=False, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"not a value header: {exc}") from None
    if version != VERSION:
        raise ValueError(f"value header version {version} is not {VERSION}")
    if kind == MSGPACK:
        return payload
    if kind == PICKLED and len(buffers) == 1 and [memoryview(buffers[0]).nbytes] == sizes:
        return pickle.loads(buffers[0])
    if kind != PICKLE:
        raise ValueError(f"unknown value kind {kind}")
    got = [memoryview(b).nbytes for b in buffers]
    if got != sizes:
        raise ValueError(f"the header describes buffers of {sizes} bytes, got {got}")
    return _Unpickler(io.BytesIO(payload), buffers=buffers).load()


def wrap_pickled(stream: bytes) -> tuple[bytes, list[memoryview]]:
    """``(header, buffers)`` of a value already pickled whole (``stream``,
    an ``OK_PICKLE`` payload): the stream is the one buffer, not copied."""
    view = memoryview(stream).cast("B")
    return msgpack.packb([VERSION, PICKLED, b"", [view.nbytes]], use_bin_type=True), [view]


def pickled_stream(header: bytes, buffers: Sequence[memoryview]) -> memoryview | None:
    """The pickle stream of a value :func:`wrap_pickled` made, else None."""
    try:
        version, kind, _payload, _sizes = msgpack.unpackb(header, raw=False, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException):
        return None
    if version != VERSION or kind != PICKLED or len(buffers) != 1:
        return None
    return memoryview(buffers[0])
