"""How functions, arguments and results travel: bytes that only a worker (or
the client that asked) ever unpickles.

Nodes never unpickle anything: a task spec is opaque bytes to them, and they
open every frame with the cluster codec before a spec can reach a worker.

Arguments
    ``ARGS_MSGPACK`` -- the positional arguments are all plain scalars (int,
    float, str, bytes, bool, None): they are msgpack-encoded, which is several
    times cheaper than pickling. ``ARGS_PICKLE`` -- ``(args, kwargs)`` pickled
    with cloudpickle; futures inside them are written as persistent ids (their
    keys) and replaced by the dependency's value in the worker.

Results (``kind``)
    ``OK_MSGPACK`` / ``OK_PICKLE`` -- a value; ``ERROR`` -- a pickled
    ``(exception, traceback text)``; ``KILLED`` -- a UTF-8 message (the task
    crashed its worker ``max_task_crashes`` times); ``FAILED`` -- a UTF-8
    message for a task mesh could not run (payload too large, and so on).
"""

from __future__ import annotations

import io
import pickle
import sys
import sysconfig
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import cloudpickle
import msgpack

ARGS_MSGPACK = 0
ARGS_PICKLE = 1

OK_MSGPACK = 0
OK_PICKLE = 1
ERROR = 2
KILLED = 3
FAILED = 4
CRASHED = 5
"""Executor-only outcome: the worker process died while holding the task."""
OK_VALUE = 6
"""The payload is a :class:`mesh.store.Value` (:func:`mesh.store.dumps`: a
msgpack header and pickle protocol 5 out-of-band buffers), never joined into
one bytes object on a node; it moves between nodes as a chunked transfer.
``Value.source`` names the spill-directory file that holds its bytes, when one
does (a worker's result, a received transfer), so a worker maps it."""

REMOTE = 7
"""Entry node to client only: the result is a value of at least
``Config.transfer_chunk`` bytes kept on the mesh, not sent; the payload is
msgpack ``[nbytes]``. The client asks for the value (:class:`Fetch`) when
``result()`` needs it, as Dask's client gathers from workers."""

FAILED_KINDS = frozenset({ERROR, KILLED, FAILED})
"""Result kinds that fail a future (and every task that depends on it)."""


def is_failure(kind: int) -> bool:
    """Whether a result of ``kind`` fails its future and its dependents."""
    return kind in FAILED_KINDS

_SCALARS = frozenset({int, float, str, bytes, bool, type(None)})


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised on a worker; set as
    the ``__cause__`` of the re-raised exception, as concurrent.futures does."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


class RemoteError(Exception):
    """Stands in for an exception raised on a worker that could not be pickled;
    the message holds its type and text."""


# --- functions ---------------------------------------------------------------

_STDLIB_PREFIXES = tuple(
    {p for p in (sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib"),
                 sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib"))
     if p}
)
_by_value_checked: dict[str, bool] = {}


def _register_module_by_value(func: Any) -> None:
    """Pickle the function's module by value unless it is installed code.

    Workers run in another process, possibly on another machine, where the
    user's script or test module is not importable; installed packages and the
    standard library are (or must be) present everywhere, as with Dask."""
    modname = getattr(func, "__module__", None)
    if not modname or modname == "__main__" or modname in _by_value_checked:
        return
    module = sys.modules.get(modname)
    path = getattr(module, "__file__", None)
    by_value = bool(path) and not path.startswith(_STDLIB_PREFIXES) and not modname.startswith(
        ("mesh.", "cloudpickle", "msgpack"))
    _by_value_checked[modname] = by_value
    if by_value and module is not None:
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:  # a module not in sys.modules under its name: leave by reference
            _by_value_checked[modname] = False


def dumps_function(func: Callable[..., Any]) -> bytes:
    """Pickle ``func`` for a worker (cloudpickle; the caller caches)."""
    _register_module_by_value(func)
    return cloudpickle.dumps(func, protocol=pickle.HIGHEST_PROTOCOL)


# --- arguments ---------------------------------------------------------------


class _FuturePickler(cloudpickle.Pickler):
    """Writes objects that have a ``_mesh_key_`` attribute (futures) as their
    key; collects those keys in ``deps``."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.deps: list[Any] = []
        self._keys: set[str] = set()

    def persistent_id(self, obj: Any) -> str | None:
        if getattr(type(obj), "_mesh_future_", False):
            key = obj.key
            if key not in self._keys:
                self._keys.add(key)
                self.deps.append(obj)
            return key
        return None


def dumps_args(args: tuple, kwargs: Mapping[str, Any]) -> tuple[int, bytes, list[Any]]:
    """Encode call arguments; returns ``(args_kind, payload, futures found in
    them)`` (objects whose class has ``_mesh_future_`` and that have ``key``)."""
    if not kwargs and all(type(a) in _SCALARS for a in args):
        try:
            return ARGS_MSGPACK, msgpack.packb(args, use_bin_type=True), []
        except (OverflowError, ValueError):
            pass  # an int beyond 64 bits: pickle it
    buf = io.BytesIO()
    pickler = _FuturePickler(buf)
    pickler.dump((args, dict(kwargs)))
    return ARGS_PICKLE, buf.getvalue(), pickler.deps


class _DepUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, deps: Mapping[str, Any]) -> None:
        super().__init__(file)
        self._deps = deps

    def persistent_load(self, pid: Any) -> Any:
        try:
            return self._deps[pid]
        except KeyError:
            raise pickle.UnpicklingError(f"dependency {pid!r} was not provided") from None


def loads_args(kind: int, payload: bytes, deps: Mapping[str, Any]) -> tuple[tuple, dict]:
    """Decode what :func:`dumps_args` made; ``deps`` maps keys to values."""
    if kind == ARGS_MSGPACK:
        return tuple(msgpack.unpackb(payload, raw=False)), {}
    args, kwargs = _DepUnpickler(io.BytesIO(payload), deps).load()
    return args, kwargs


# --- results -----------------------------------------------------------------


def dumps_value(value: Any) -> tuple[int, bytes]:
    """Encode a task's return value as ``(kind, payload)``."""
    if type(value) in _SCALARS:
        try:
            return OK_MSGPACK, msgpack.packb(value, use_bin_type=True)
        except (OverflowError, ValueError):
            pass
    return OK_PICKLE, cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def dumps_error(exc: BaseException) -> tuple[int, bytes]:
    """Encode an exception raised by a task, with its traceback text."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        return ERROR, cloudpickle.dumps((exc, tb), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as pickling_error:  # any object may fail to pickle in any way
        stand_in = RemoteError(f"{type(exc).__qualname__}: {exc} "
                               f"(the exception itself could not be pickled: {pickling_error})")
        return ERROR, cloudpickle.dumps((stand_in, tb), protocol=pickle.HIGHEST_PROTOCOL)


def loads_value(kind: int, payload: bytes) -> Any:
    """The value of an ``OK_*`` result."""
    if kind == OK_MSGPACK:
        return msgpack.unpackb(payload, raw=False)
    if kind == OK_PICKLE:
        return pickle.loads(payload)
    raise ValueError(f"result kind {kind} carries no value")


def load_error(payload: bytes) -> BaseException:
    """The exception of an ``ERROR`` result, with the remote traceback as its
    ``__cause__``."""
    exc, tb = pickle.loads(payload)
    exc.__cause__ = RemoteTraceback(tb)
    return exc
