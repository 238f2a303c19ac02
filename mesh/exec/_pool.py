"""The real executor: a pool of ``python -m mesh.exec._worker`` processes.

This is outside-world code (processes and pipes), like :mod:`mesh.realtime`.
Each worker keeps up to ``Config.pool_depth`` batches in flight so the pipe
latency is hidden behind the batch that is running. Batch size adapts to the
measured duration of each function: tiny tasks travel in batches of up to
``Config.pool_max_batch``, slow ones (and functions not timed yet) one or two at a time,
so that idle workers, here or on other nodes, are never starved by a long
batch.

A worker that dies is reaped and replaced; every job it held comes back as
``CRASHED``. A worker that dies before finishing any batch, three times in a
row, means workers cannot start at all: the pool stops replacing them and
logs why.

With a ``spill_dir`` (the node's spill directory), values move without pipe
copies (:mod:`mesh.exec._handoff`): a worker writes a large result into a file
there and the pool hands the node an ``OK_VALUE`` outcome mapping it; an
``OK_VALUE`` dependency reaches the worker as a file name (a value with no
file yet is written once while jobs need it). ``pipe_bytes_in`` and
``pipe_bytes_out`` count the bytes that did go through the pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import struct
import sys
from collections import OrderedDict, deque
from pathlib import Path

import msgpack

from mesh.config import DEFAULT, Config
from mesh.exec._executor import Job, Outcome, OutcomeHandler
from mesh.exec._handoff import InputFiles, Staged, adopt_result, failed
from mesh.protocol import payload as P
from mesh.store import FileSpillDir, Value

__all__ = ["ProcessExecutor"]

log = logging.getLogger("mesh.exec.pool")
_HEADER = struct.Struct(">I")
_MESH_ROOT = str(Path(__file__).resolve().parent.parent.parent)


class _Worker:
    __slots__ = ("batches", "done_any", "fns", "handed", "held", "prefix", "proc", "reader",
                 "sending")

    def __init__(self, proc: asyncio.subprocess.Process, prefix: str) -> None:
        self.proc = proc
        self.prefix = prefix
        """Its result files are ``prefix<n>``, ``n`` counting up from 0."""
        self.handed = -1
        """The highest ``n`` whose file went to the node."""
        self.batches: deque[list[str]] = deque()
        self.fns: deque[bytes] = deque()
        self.held: deque[list[Staged]] = deque()
        """Per batch in flight, the input files it needs."""
        self.reader: asyncio.Task[None] | None = None
        self.sending: asyncio.Task[None] | None = None
        """The last send still waiting for its input files; later ones follow it."""
        self.done_any = False


class ProcessExecutor:
    """Runs jobs in ``workers`` subprocesses (default: the number of cores);
    its tuning comes from ``config`` (the ``pool_*`` values, with reasons).
    ``spill_dir``: the node's spill directory, for values handed over as files
    (``Config.oob_threshold``); without it every value goes through the pipes."""

    def __init__(self, workers: int | None = None, *, config: Config = DEFAULT,
                 spill_dir: str | None = None) -> None:
        self.workers = workers if workers and workers > 0 else (os.cpu_count() or 1)
        self._cfg = config
        self._depth = config.pool_depth
        self._max_batch = config.pool_max_batch
        self._backlog: deque[Job] = deque()
        self._solo: deque[Job] = deque()
        self._pool: list[_Worker] = []
        self._on_outcomes: OutcomeHandler | None = None
        self._fn_seconds: OrderedDict[bytes, float] = OrderedDict()
        """Moving average of the run time of each function (by its pickle)."""
        self._early_deaths = 0
        self._stopping = False
        self._spawning: set[asyncio.Task[None]] = set()
        self._sends: set[asyncio.Task[None]] = set()
        self.restarts = 0
        self._token = secrets.token_hex(4)  # file names unique among nodes sharing a directory
        self._spawned = 0
        self._spill = FileSpillDir(spill_dir) if spill_dir is not None else None
        self._inputs = (InputFiles(self._spill, f"i{self._token}-")
                        if self._spill is not None else None)
        self.pipe_bytes_in = 0
        self.pipe_bytes_out = 0

    # --- lifecycle ---------------------------------------------------------
    async def start(self, on_outcomes: OutcomeHandler) -> None:
        self._on_outcomes = on_outcomes
        spawned = await asyncio.gather(*(self._spawn() for _ in range(self.workers)))
        for proc, prefix in spawned:
            self._adopt(proc, prefix)

    async def _spawn(self) -> tuple[asyncio.subprocess.Process, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_MESH_ROOT, env.get("PYTHONPATH", "")) if p)
        prefix = f"w{self._token}-{self._spawned}-"
        self._spawned += 1
        args = ([] if self._spill is None else
                [self._spill.path, prefix, str(self._cfg.oob_threshold)])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mesh.exec._worker", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        )
        return proc, prefix

    def _adopt(self, proc: asyncio.subprocess.Process, prefix: str) -> None:
        worker = _Worker(proc, prefix)
        worker.reader = asyncio.get_running_loop().create_task(self._read(worker))
        self._pool.append(worker)
        self._pump()

    async def stop(self) -> None:
        self._stopping = True
        for task in [*self._spawning, *self._sends]:
            task.cancel()
        for w in self._pool:
            if w.proc.stdin is not None and not w.proc.stdin.is_closing():
                w.proc.stdin.close()
        for w in self._pool:
            try:
                await asyncio.wait_for(w.proc.wait(), 1.0)
            except TimeoutError:
                w.proc.kill()
                await w.proc.wait()
            if w.reader is not None:
                w.reader.cancel()
        self._pool.clear()
        if self._inputs is not None:
            self._inputs.close()

    # --- scheduling --------------------------------------------------------
    def _batch_size(self, fn: bytes | None) -> int:
        seconds = self._fn_seconds.get(fn) if fn is not None else None
        if seconds is None:
            return self._cfg.pool_untimed_batch  # small batches until measured
        target = self._cfg.pool_batch_seconds
        return max(1, min(self._max_batch, int(target / max(seconds, 1e-7))))

    @property
    def takes_values(self) -> bool:
        """Workers map Value inputs from the spill directory themselves."""
        return self._spill is not None

    def capacity(self, fn: bytes | None = None) -> int:
        free = sum(self._depth - len(w.batches) for w in self._pool)
        return max(0, free * self._batch_size(fn) - len(self._backlog) - len(self._solo))

    def run(self, jobs: list[Job]) -> None:
        self._backlog.extend(jobs)
        self._pump()

    def run_solo(self, job: Job) -> None:
        self._solo.append(job)
        self._pump()

    def _pump(self) -> None:
        while self._backlog or self._solo:
            free = [w for w in self._pool if len(w.batches) < self._depth]
            if not free:
                return
            free.sort(key=lambda w: len(w.batches))
            worker = free[0]
            if self._solo:
                batch = [self._solo.popleft()]
            else:
                share = math.ceil(len(self._backlog) / len(free))
                n = max(1, min(self._batch_size(self._backlog[0][1]), share))
                batch = [self._backlog.popleft() for _ in range(min(n, len(self._backlog)))]
            self._send(worker, batch)

    def _send(self, worker: _Worker, batch: list[Job]) -> None:
        held: list[Staged] = []
        wire = [self._wire(job, held) for job in batch]
        tids = [job[0] for job in batch]
        worker.batches.append(tids)
        worker.fns.append(batch[0][1])
        worker.held.append(held)
        if held or worker.sending is not None:  # input files first, and in order
            task = asyncio.get_running_loop().create_task(
                self._send_staged(worker, tids, wire, held, worker.sending))
            worker.sending = task
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)
        else:
            self._write(worker, wire)

    def _wire(self, job: Job, held: list[Staged]) -> Job:
        """The job as the worker reads it: an ``OK_VALUE`` dependency becomes
        its spill file's name (``[header, *buffers]`` without a spill dir)."""
        deps = job[4]
        if not deps or all(kind != P.OK_VALUE for kind, _ in deps.values()):
            return job
        wire = {}
        for key, (kind, value) in deps.items():
            if kind != P.OK_VALUE or not isinstance(value, Value):
                wire[key] = [kind, value]  # already as a worker reads it
            elif self._inputs is None:
                wire[key] = [kind, [value.header, *value.buffers]]
            elif value.source is not None:
                wire[key] = [kind, value.source]
            else:
                staged = self._inputs.hold(value)
                held.append(staged)
                wire[key] = [kind, staged.name]
        return [*job[:4], wire]

    async def _send_staged(self, worker: _Worker, tids: list[str], wire: list[Job],
                           held: list[Staged], before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        assert self._inputs is not None or not held
        why = await self._inputs.ready(held) if held else None
        if worker.sending is asyncio.current_task():
            worker.sending = None
        if worker not in self._pool:
            return  # it died: its batches were reported as crashed
        if why is not None:  # the batch's jobs fail; an empty batch keeps the replies in order
            outcomes: list[Outcome] = [
                (tid, *failed(f"task {tid!r} cannot start: its input of {why}")) for tid in tids]
            tids.clear()
            wire = []
            self._deliver(outcomes)
        self._write(worker, wire)

    def _write(self, worker: _Worker, wire: list[Job]) -> None:
        body = msgpack.packb(wire, use_bin_type=True)
        stdin = worker.proc.stdin
        if stdin is None or stdin.is_closing():
            return  # the reader sees the death and reports the batch as crashed
        self.pipe_bytes_out += _HEADER.size + len(body)
        stdin.write(_HEADER.pack(len(body)) + body)

    # --- results -----------------------------------------------------------
    async def _read(self, worker: _Worker) -> None:
        stdout = worker.proc.stdout
        assert stdout is not None
        try:
            while True:
                head = await stdout.readexactly(4)
                (size,) = _HEADER.unpack(head)
                elapsed, results = msgpack.unpackb(await stdout.readexactly(size), raw=False)
                self.pipe_bytes_in += _HEADER.size + size
                tids = worker.batches.popleft()
                fn = worker.fns.popleft()
                held = worker.held.popleft()
                if held:
                    self._inputs.release(held)  # type: ignore[union-attr]
                worker.done_any = True
                self._early_deaths = 0
                if tids:
                    self._time(fn, elapsed / len(tids))
                outcomes: list[Outcome] = [self._outcome(worker, *r) for r in results]
                self._deliver(outcomes)
                self._pump()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        await self._on_death(worker)

    def _outcome(self, worker: _Worker, tid: str, kind: int, payload: object) -> Outcome:
        if kind != P.OK_VALUE or self._spill is None:
            return tid, kind, payload  # type: ignore[return-value]
        name, sizes = payload  # type: ignore[misc]
        n = self._number(worker, name)
        if n is None:
            return (tid, *failed(f"the result of task {tid!r} came back as a file named {name!r}, "
                                 f"not one of its worker's ({worker.prefix}<n>)"))
        worker.handed = max(worker.handed, n)
        return (tid, *adopt_result(tid, self._spill, name, sizes))

    @staticmethod
    def _number(worker: _Worker, name: str) -> int | None:
        """``n`` of a file ``prefix<n>`` (or ``prefix<n>.part``) of ``worker``."""
        n = name[len(worker.prefix):].removesuffix(".part")
        return int(n) if name.startswith(worker.prefix) and n.isdigit() else None

    def _orphans(self, worker: _Worker) -> None:
        """Delete the files a dead worker wrote but never handed over (a
        ``.part`` it was writing, a result it died before reporting)."""
        if self._spill is None:
            return
        for name in os.listdir(self._spill.path):
            n = self._number(worker, name)
            if n is not None and (name.endswith(".part") or n > worker.handed):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self._spill.path, name))

    def _time(self, fn: bytes, per_task: float) -> None:
        old = self._fn_seconds.pop(fn, None)
        self._fn_seconds[fn] = per_task if old is None else 0.8 * old + 0.2 * per_task
        if len(self._fn_seconds) > self._cfg.pool_timed_functions:
            self._fn_seconds.popitem(last=False)

    def _deliver(self, outcomes: list[Outcome]) -> None:
        """Hand outcomes to the node. A bug in the handler must not kill the
        worker's reader (its tasks would hang with nothing said): the
        handler's error fails those tasks with a message and is logged."""
        if not outcomes or self._on_outcomes is None or self._stopping:
            return
        try:
            self._on_outcomes(outcomes)
        except Exception as exc:
            log.exception("recording the outcomes of %d task(s) failed; failing them",
                          len(outcomes))
            self._fail(outcomes, exc)

    def _fail(self, outcomes: list[Outcome], exc: Exception) -> None:
        failed: list[Outcome] = [
            (tid, P.FAILED, (f"mesh could not record the outcome of task {tid!r}: "
                             f"{type(exc).__name__}: {exc} (see the node's log)").encode())
            for tid, _kind, _payload in outcomes]
        try:
            self._on_outcomes(failed)  # type: ignore[misc]
        except Exception:
            log.exception("failing %d task(s) failed too; they are lost on this node "
                          "(their clients submit them again elsewhere)", len(failed))

    async def _on_death(self, worker: _Worker) -> None:
        if worker in self._pool:
            self._pool.remove(worker)
        code = await worker.proc.wait()
        if self._stopping:
            return
        lost = [tid for batch in worker.batches for tid in batch]
        worker.batches.clear()
        worker.fns.clear()
        for held in worker.held:
            if held:
                self._inputs.release(held)  # type: ignore[union-attr]
        worker.held.clear()
        self._orphans(worker)
        log.warning("worker process %d exited with code %s holding %d task(s); restarting it",
                    worker.proc.pid, code, len(lost))
        if not worker.done_any and not lost:
            self._early_deaths += 1
        if self._early_deaths >= self._cfg.pool_max_early_deaths:
            log.error("worker processes exit right after starting (%d times in a row); not "
                      "restarting them. Check that `%s -m mesh.exec._worker` runs on this host.",
                      self._early_deaths, sys.executable)
        else:
            self.restarts += 1
            self._adopt(*await self._spawn())
        self._deliver([(tid, P.CRASHED, b"") for tid in lost])
