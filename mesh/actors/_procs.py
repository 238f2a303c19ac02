"""Where actors run: the worker seam and its two implementations.

The actor driver never starts processes itself; it is handed an
:class:`ActorWorkers`. :class:`ActorProcesses` gives every actor its own
``python -m mesh.actors._worker`` process (outside-world code, like
:mod:`mesh.exec._pool`); :class:`InlineActors` applies calls in this process,
on the loop, for the simulator and tests. Both report every
:class:`~mesh.actors._records.WorkerEvent` through the handler given to
:meth:`ActorWorkers.start`, and a worker's death as ``Crashed``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgpack

from mesh.actors._records import (
    Crashed,
    Kill,
    Ran,
    Run,
    Spawn,
    Started,
    WorkerEffect,
    WorkerEvent,
)
from mesh.actors._worker import Actor
from mesh.store import Value

__all__ = ["ActorProcesses", "ActorWorkers", "InlineActors"]

log = logging.getLogger("mesh.actors")
_HEADER = struct.Struct(">I")
_MESH_ROOT = str(Path(__file__).resolve().parent.parent.parent)

EventHandler = Callable[[WorkerEvent], None]


class ActorWorkers(Protocol):
    """Runs actors' workers; every :class:`Run` gets one ``Ran`` or the
    worker's ``Crashed``."""

    async def start(self, on_event: EventHandler) -> None: ...

    def carry(self, effects: list[WorkerEffect]) -> None:
        """Spawn, run and kill, in order; never blocks."""

    async def stop(self) -> None:
        """End every worker."""


class _Proc:
    __slots__ = ("actor", "backlog", "gen", "proc", "reader")

    def __init__(self, actor: str, gen: int) -> None:
        self.actor = actor
        self.gen = gen
        self.proc: asyncio.subprocess.Process | None = None
        self.backlog: list[bytes] = []
        self.reader: asyncio.Task[None] | None = None


class ActorProcesses:
    """One worker process per actor."""

    def __init__(self) -> None:
        self._procs: dict[str, _Proc] = {}
        self._on_event: EventHandler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._packer = msgpack.Packer(use_bin_type=True)
        self._stopping = False

    async def start(self, on_event: EventHandler) -> None:
        self._on_event = on_event

    def carry(self, effects: list[WorkerEffect]) -> None:
        for eff in effects:
            if type(eff) is Spawn:
                self._kill(eff.actor)
                p = self._procs[eff.actor] = _Proc(eff.actor, eff.gen)
                self._write(p, ["init", eff.fn, eff.akind, eff.args, eff.state, eff.durable])
                p.reader = self._spawn_task(self._run(p))
            elif type(eff) is Run:
                p = self._procs.get(eff.actor)
                if p is not None and p.gen == eff.gen:
                    self._write(p, ["run", [_wire_call(c) for c in eff.calls], eff.snapshot])
            elif type(eff) is Kill:
                p = self._procs.get(eff.actor)
                if p is not None and p.gen == eff.gen:
                    self._kill(eff.actor)

    def _spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _write(self, p: _Proc, msg: list) -> None:
        body = self._packer.pack(msg)
        frame = _HEADER.pack(len(body)) + body
        if p.proc is None or p.proc.stdin is None:
            p.backlog.append(frame)
        else:
            p.proc.stdin.write(frame)

    async def _run(self, p: _Proc) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(x for x in (_MESH_ROOT, env.get("PYTHONPATH", "")) if x)
        try:
            p.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mesh.actors._worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
            assert p.proc.stdin is not None and p.proc.stdout is not None
            for frame in p.backlog:
                p.proc.stdin.write(frame)
            p.backlog.clear()
            out = p.proc.stdout
            while True:
                head = await out.readexactly(4)
                body = await out.readexactly(_HEADER.unpack(head)[0])
                msg = msgpack.unpackb(body, raw=False)
                self._emit(Started(p.actor, p.gen, msg[1], msg[2], msg[3]) if msg[0] == "started"
                           else Ran(p.actor, p.gen, msg[1], msg[2], msg[3], msg[4]))
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            if not self._stopping and self._procs.get(p.actor) is p:
                log.warning("actor %s: its worker died (%s)", p.actor, exc)
                del self._procs[p.actor]
                self._emit(Crashed(p.actor, p.gen))
        finally:
            if p.proc is not None and p.proc.returncode is None:
                p.proc.kill()
                await p.proc.wait()

    def _emit(self, ev: WorkerEvent) -> None:
        if self._on_event is not None and not self._stopping:
            self._on_event(ev)

    def _kill(self, actor: str) -> None:
        p = self._procs.pop(actor, None)
        if p is not None and p.reader is not None:
            p.reader.cancel()

    def pid(self, actor: str) -> int | None:
        """The worker process of ``actor`` (for tests that kill it)."""
        p = self._procs.get(actor)
        return None if p is None or p.proc is None else p.proc.pid

    async def stop(self) -> None:
        self._stopping = True
        for actor in list(self._procs):
            self._kill(actor)
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _wire_call(call: list) -> list:
    """A call as the worker reads it: a large input value inline through the
    pipe as ``[header, *buffers]`` (as the task pool sends it without a
    spill directory)."""
    deps = call[4]
    if deps and any(type(v[1]) is Value for v in deps.values()):
        call = [*call[:4], {k: [kind, [v.header, *v.buffers]] if type(v) is Value else [kind, v]
                            for k, (kind, v) in deps.items()}]
    return call


class InlineActors:
    """Actors applied in this process, one loop turn after each effect."""

    def __init__(self, call_soon: Callable[[Callable[[], None]], Any] | None = None) -> None:
        self._actors: dict[str, tuple[int, Actor]] = {}
        self._on_event: EventHandler | None = None
        self._call_soon = call_soon

    async def start(self, on_event: EventHandler) -> None:
        self._on_event = on_event
        if self._call_soon is None:
            self._call_soon = asyncio.get_running_loop().call_soon

    def carry(self, effects: list[WorkerEffect]) -> None:
        for eff in effects:
            if type(eff) is Spawn:
                a = Actor()
                self._actors[eff.actor] = (eff.gen, a)
                msg = a.init(eff.fn, eff.akind, eff.args, eff.state, eff.durable)
                self._later(Started(eff.actor, eff.gen, msg[1], msg[2], msg[3]))
            elif type(eff) is Run:
                got = self._actors.get(eff.actor)
                if got is not None and got[0] == eff.gen:
                    msg = got[1].run(eff.calls, eff.snapshot)
                    self._later(Ran(eff.actor, eff.gen, *msg[1:]))
            elif type(eff) is Kill:
                got = self._actors.get(eff.actor)
                if got is not None and got[0] == eff.gen:
                    del self._actors[eff.actor]

    def crash(self, actor: str) -> None:
        """Lose ``actor``'s object as if its process died."""
        got = self._actors.pop(actor, None)
        if got is not None:
            self._later(Crashed(actor, got[0]))

    def _later(self, ev: WorkerEvent) -> None:
        assert self._call_soon is not None and self._on_event is not None
        handler = self._on_event
        self._call_soon(lambda: handler(ev))

    async def stop(self) -> None:
        self._actors.clear()
