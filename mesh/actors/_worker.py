"""An actor's worker process: ``python -m mesh.actors._worker``.

One process per actor (as Ray does): it holds the actor's object and applies
calls in the order given. Frames are a 4-byte big-endian length and a msgpack
body, in on stdin, out on the protocol pipe (user prints go to stderr):

* ``["init", fn, akind, args, state, durable]``: make the object, from
  ``state`` when not empty, else by calling the class; answers
  ``["started", kind, payload, state]``.
* ``["run", [[key, method, akind, args, deps], ...], snapshot]``: apply the
  calls (``deps``: the values of the futures among the arguments,
  ``{key: [kind, payload]}`` as a task worker takes them, or None);
  answers ``["ran", [[key, kind, payload], ...], state]``.

A durable actor's state is pickled after every call (the object's
``__dict__``, or the object itself when it has none). A call after which the
state cannot be pickled fails with a ``TypeError`` naming the attribute and
its type, and the object goes back to the state before that call: the last
state the host could replicate. A method that raises keeps what it changed.
The node authenticated every frame before writing it here.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import pickle
import struct
import sys
from typing import Any, BinaryIO

import cloudpickle
import msgpack

from mesh.exec._handoff import load_dep
from mesh.protocol import payload as P

_HEADER = struct.Struct(">I")


def dumps_state(obj: Any) -> bytes:
    """The object's state, or ``TypeError`` naming what cannot be pickled."""
    state = obj.__dict__ if hasattr(obj, "__dict__") else obj
    try:
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        pass
    try:
        return cloudpickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # any object may fail to pickle in any way
        culprit = ""
        if isinstance(state, dict):
            for name, value in state.items():
                try:
                    cloudpickle.dumps(value)
                except Exception:
                    culprit = f" attribute {name!r} of type {type(value).__qualname__}"
                    break
        raise TypeError(
            f"the actor's state cannot be pickled, so it cannot be replicated:{culprit} "
            f"({exc}); the call's changes are undone. Keep only picklable values on a "
            "durable actor, or make it with durable=False") from None


def loads_state(cls: type, blob: bytes) -> Any:
    state = pickle.loads(blob)
    if isinstance(state, cls):
        return state
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


class Actor:
    def __init__(self) -> None:
        self.cls: type | None = None
        self.obj: Any = None
        self.durable = False
        self.last = b""
        self.loop: asyncio.AbstractEventLoop | None = None

    def init(self, fn: bytes, akind: int, args: bytes, state: bytes, durable: bool) -> list:
        self.durable = durable
        try:
            self.cls = cloudpickle.loads(fn)
            if state:
                self.obj = loads_state(self.cls, state)
            else:
                a, kw = P.loads_args(akind, args, {})
                self.obj = self.cls(*a, **kw)
            self.last = dumps_state(self.obj) if durable else b""
            kind, payload = P.dumps_value(None)
        except BaseException as exc:  # the constructor's failure is the open's answer
            if isinstance(exc, KeyboardInterrupt):
                raise
            kind, payload = P.dumps_error(exc)
        return ["started", kind, payload, self.last]

    def call(self, key: str, method: str, akind: int, args: bytes,
             deps: dict | None = None) -> list:
        if deps:
            for kind, payload in deps.values():
                if P.is_failure(kind):  # a failed input fails the call: it does not run
                    return [key, kind, payload]
        try:
            if method.startswith("_"):
                raise AttributeError(f"actor methods starting with '_' cannot be called "
                                     f"remotely ({method!r})")
            fn = getattr(self.obj, method)
            values = {k: load_dep(kind, payload, None) for k, (kind, payload)
                      in deps.items()} if deps else {}
            a, kw = P.loads_args(akind, args, values)
            del values
            value = fn(*a, **kw)
            if inspect.isawaitable(value):  # async methods run one at a time too
                if self.loop is None:
                    self.loop = asyncio.new_event_loop()
                value = self.loop.run_until_complete(value)
            kind, payload = P.dumps_value(value)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            kind, payload = P.dumps_error(exc)
        if self.durable:
            try:
                self.last = dumps_state(self.obj)
            except TypeError as exc:
                kind, payload = P.dumps_error(exc)
                assert self.cls is not None
                self.obj = loads_state(self.cls, self.last)
        return [key, kind, payload]

    def run(self, calls: list, snapshot: bool) -> list:
        results = [self.call(*c) for c in calls]
        state = self.last if self.durable else b""
        if snapshot and not self.durable:
            try:
                state = dumps_state(self.obj)
            except TypeError:
                state = b""
        return ["ran", results, state]


def _read(stream: BinaryIO) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = _HEADER.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return msgpack.unpackb(body, raw=False)


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # user prints go to stderr
    stdin = os.fdopen(0, "rb")
    actor = Actor()
    packer = msgpack.Packer(use_bin_type=True)
    while (msg := _read(stdin)) is not None:
        reply = actor.init(*msg[1:]) if msg[0] == "init" else actor.run(msg[1], msg[2])
        body = packer.pack(reply)
        out.write(_HEADER.pack(len(body)) + body)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
