"""An actor's worker process: ``python -m mesh.actors._worker``.

One process per actor (as Ray does): it holds the actor's object and starts
calls in the order given. Frames are a 4-byte big-endian length and a msgpack
body, in on stdin, out on the protocol pipe (user prints go to stderr):

* ``["init", fn, akind, args, state, durable]``: make the object, from
  ``state`` when not empty, else by calling the class; answers
  ``["started", kind, payload, state]``.
* ``["run", [[key, method, akind, args, deps], ...], snapshot]``: start the
  calls (``deps``: the values of the futures among the arguments,
  ``{key: [kind, payload]}`` as a task worker takes them, or None);
  answers ``["ran", [[key, kind, payload], ...], state, True, quiet]`` with
  the calls that finished. An ``async def`` call suspended at an await goes
  on as a task of the worker's loop and is reported when it finishes, in a
  frame of its own (``reply`` False) unless a run is being answered.
* ``state``: a durable actor's state at a quiet point (no call in flight,
  ``quiet`` True), else ``b""``.

A durable actor's state is pickled after every call that ends with no
other in flight (the object's ``__dict__``, or the object itself when it has
none). A call after which the state cannot be pickled fails with a
``TypeError`` naming the attribute and its type, and the object goes back
to the state before that call: the last state the host could replicate. A
method that raises keeps what it changed.
The node authenticated every frame before writing it here.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    """The actor's object and the calls in flight on it.

    Sync methods run one at a time, to their end. An ``async def`` method
    runs, in call order, up to its first await; then the next call starts,
    and its coroutine goes on as a task of the worker's event loop
    (:meth:`run_async`), so calls interleave at their awaits. Results are
    reported as calls finish (:meth:`report`); a durable actor's state only
    at a quiet point, with no call in flight, so a replicated state holds
    every call that finished and none half done."""

    def __init__(self) -> None:
        self.cls: type | None = None
        self.obj: Any = None
        self.durable = False
        self.last = b""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.finished: list[list] = []
        """Results ``[key, kind, payload]`` not reported yet."""
        self.tasks: dict[str, asyncio.Task[None]] = {}
        """Async calls in flight (suspended at an await), by key."""
        self.dirty = False
        """A call ended while others were in flight: pickle at the next quiet point."""
        self.notify: Any = None
        """Called when an async call finished on its own (the worker reports it)."""

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

    def invoke(self, key: str, method: str, akind: int, args: bytes,
               deps: dict | None = None) -> Any:
        """Call the method: its outcome ``(kind, payload)``, or the awaitable
        an ``async def`` method returned."""
        if deps:
            for kind, payload in deps.values():
                if P.is_failure(kind):  # a failed input fails the call: it does not run
                    return kind, payload
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
            if inspect.isawaitable(value):
                return value
            return P.dumps_value(value)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            return P.dumps_error(exc)

    def finish(self, key: str, kind: int, payload: bytes) -> list:
        """A call ended: with no other in flight, a durable state is pickled
        now (a state that cannot be is undone, and fails this call)."""
        if self.durable:
            if self.tasks:
                self.dirty = True
            else:
                kind, payload = self._save(kind, payload)
        return [key, kind, payload]

    def _save(self, kind: int, payload: bytes) -> tuple[int, bytes]:
        self.dirty = False
        try:
            self.last = dumps_state(self.obj)
        except TypeError as exc:
            assert self.cls is not None
            self.obj = loads_state(self.cls, self.last)
            return P.dumps_error(exc)
        return kind, payload

    def call(self, key: str, method: str, akind: int, args: bytes,
             deps: dict | None = None) -> list:
        """One call to its end, on a loop of our own (no loop runs here)."""
        got = self.invoke(key, method, akind, args, deps)
        if type(got) is tuple:
            return self.finish(key, *got)
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
        try:
            kind, payload = P.dumps_value(self.loop.run_until_complete(got))
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            kind, payload = P.dumps_error(exc)
        return self.finish(key, kind, payload)

    def run(self, calls: list, snapshot: bool) -> list:
        """Apply ``calls`` one after the other (in-process workers)."""
        results = [self.call(*c) for c in calls]
        state = self.last if self.durable else b""
        if snapshot and not self.durable:
            try:
                state = dumps_state(self.obj)
            except TypeError:
                state = b""
        return ["ran", results, state, True, True]

    async def run_async(self, calls: list) -> None:
        """Start ``calls`` in order on the running loop (the worker process)."""
        for c in calls:
            got = self.invoke(*c)
            if type(got) is tuple:
                self.finished.append(self.finish(c[0], *got))
                continue
            key = c[0]
            self.tasks[key] = asyncio.get_running_loop().create_task(self._await(key, got))
            await asyncio.sleep(0)  # its first step runs now: up to its first await

    async def _await(self, key: str, awaitable: Any) -> None:
        try:
            kind, payload = P.dumps_value(await awaitable)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
                raise
            kind, payload = P.dumps_error(exc)
        del self.tasks[key]
        self.finished.append(self.finish(key, kind, payload))
        if self.notify is not None:
            self.notify()

    def report(self, reply: bool) -> list:
        """``["ran", results, state, reply, quiet]``: what finished since the
        last report; a durable state when no call is in flight (``quiet``)."""
        quiet = not self.tasks
        if self.durable and quiet and self.dirty and self.finished:
            last = self.finished[-1]
            last[1], last[2] = self._save(last[1], last[2])
        results, self.finished = self.finished, []
        state = self.last if self.durable and quiet else b""
        return ["ran", results, state, reply, quiet]


async def serve(actor: Actor, stdin: BinaryIO, out: BinaryIO) -> None:
    """Read frames from the node and answer them; async calls go on between."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    packer = msgpack.Packer(use_bin_type=True)
    busy = False

    def write(reply: list) -> None:
        body = packer.pack(reply)
        out.write(_HEADER.pack(len(body)) + body)
        out.flush()

    def progress() -> None:
        if not busy and actor.finished:
            write(actor.report(False))

    actor.notify = lambda: loop.call_soon(progress)
    while True:
        try:
            head = await reader.readexactly(4)
            msg = msgpack.unpackb(await reader.readexactly(_HEADER.unpack(head)[0]), raw=False)
        except asyncio.IncompleteReadError:
            return
        if msg[0] == "init":
            write(actor.init(*msg[1:]))
            continue
        busy = True
        await actor.run_async(msg[1])
        busy = False
        write(actor.report(True))


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # user prints go to stderr
    stdin = os.fdopen(0, "rb")
    with contextlib.suppress(BrokenPipeError):  # the node went away: so do we
        asyncio.run(serve(Actor(), stdin, out))


if __name__ == "__main__":
    sys.exit(main())
