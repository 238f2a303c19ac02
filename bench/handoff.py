"""Values between a node and its worker processes: the spill-file hand-off
beside ``multiprocessing`` pickling through a pipe, measured in the same run.

    python -m bench.handoff [--mib 256] [--repeat 3]

Prints ONE JSON line. Rates are MB/s (10**6 bytes per second of wall clock) of
the array's bytes, as ``[worst, best]`` over ``--repeat`` runs (the machine is
shared and noisy); each mesh run goes right beside its peer's, so both see the
same load. Each worker process keeps the float64 array it returns in a
cache, so the figures measure moving it, not making it. ``--spill-dir``
chooses the file system (``/dev/shm``: memory; the default temporary
directory: the page cache of a disk, whose write-back may throttle writers).

* ``result.mesh_mb_per_s`` -- :class:`mesh.exec.ProcessExecutor` with a spill
  directory (a temporary one): the worker serializes the array with
  :func:`mesh.store.dumps`, writes it into a spill file and sends its name; the
  parent maps the file (``OK_VALUE`` outcome). From ``run`` to the outcome.
* ``result.mesh_read_mb_per_s`` -- the same plus ``loads`` and a sum of the
  array in the parent (every page read once).
* ``result.pipe_mb_per_s`` -- the peer: a ``multiprocessing`` pool of one
  process returns the array (pickled through its pipe, rebuilt in the parent);
  ``result.pipe_read_mb_per_s`` adds the same sum.
* ``result.mesh_pipe_bytes`` -- bytes the hand-off sent through the pipe.
* ``input.mesh_mb_per_s`` -- a task whose input is that value, held in a spill
  file, sums it in the worker (the file is mapped, not copied); the peer
  ``input.pipe_mb_per_s`` passes the array to the pool as an argument.
* ``*_cpu_mb_per_s`` -- the same steps per CPU second of the parent and its
  worker together (user and system time): what the steps cost, whatever the
  load on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mesh.exec import ProcessExecutor
from mesh.protocol import payload as P
from mesh.store import FileSpillDir, loads


@functools.lru_cache(maxsize=1)
def made(mib: int) -> np.ndarray:
    """The array of ``mib`` MiB, made once per process (a cached function
    pickles by reference: the job carries its name, not the parent's cache)."""
    return np.arange((mib << 20) // 8, dtype=np.float64)


def total(arr: np.ndarray) -> float:
    return float(arr.sum())


class _Key:
    """Stands for a future in the arguments: pickled as its key."""

    _mesh_future_ = True

    def __init__(self, key: str) -> None:
        self.key = key


def _job(tid: str, fn: Callable[..., Any], args: tuple, deps: dict | None = None) -> list:
    akind, payload, _ = P.dumps_args(args, {})
    return [tid, P.dumps_function(fn), akind, payload, deps]


def _mb(nbytes: int, seconds: list[float]) -> list[int]:
    rates = [nbytes / s / 1e6 for s in seconds]
    return [round(min(rates)), round(max(rates))]


def _cpu(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Timer:
    """Wall and CPU seconds (this process and one child) of each measured step."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[float, float]]] = {}

    @contextlib.contextmanager
    def step(self, name: str, child: int) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time() + _cpu(child)
        yield
        self.runs.setdefault(name, []).append(
            (time.perf_counter() - wall, time.process_time() + _cpu(child) - cpu))

    def rates(self, nbytes: int) -> dict[str, list[int]]:
        out = {}
        for name, runs in self.runs.items():
            out[f"{name}_mb_per_s"] = _mb(nbytes, [w for w, _ in runs])
            out[f"{name}_cpu_mb_per_s"] = _mb(nbytes, [max(c, 1e-3) for _, c in runs])
        return out


class _Mesh:
    """A one-worker :class:`ProcessExecutor` with a spill directory."""

    def __init__(self, spill: FileSpillDir) -> None:
        self.ex = ProcessExecutor(1, spill_dir=spill.path)
        self.got: asyncio.Queue[tuple[str, int, Any]] = asyncio.Queue()
        self.n = 0

    @property
    def pid(self) -> int:
        return self.ex._pool[0].proc.pid

    async def one(self, fn: Callable[..., Any], args: tuple, deps: dict | None = None
                  ) -> tuple[int, Any]:
        self.n += 1
        self.ex.run([_job(str(self.n), fn, args, deps)])
        _tid, kind, payload = await self.got.get()
        if kind == P.FAILED:
            raise RuntimeError(payload.decode())
        return kind, payload


async def _measure(mib: int, repeat: int, spill: FileSpillDir) -> dict[str, Any]:
    from bench import handoff  # by this name, not __main__, so a worker can import it

    made = handoff.made
    nbytes = mib << 20
    want = total(made(mib))
    mesh = _Mesh(spill)
    await mesh.ex.start(lambda outs: [mesh.got.put_nowait(o) for o in outs])
    res, inp = _Timer(), _Timer()
    pipe_bytes = []
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            kind, held = await mesh.one(made, (mib,))  # each side makes its array once
            assert kind == P.OK_VALUE
            peer = pool.apply(os.getpid)
            pool.apply(made, (mib,))
            deps = {"k": [P.OK_VALUE, held]}
            for _ in range(repeat):  # mesh and its peer back to back: the same load
                before = mesh.ex.pipe_bytes_in
                with res.step("mesh", mesh.pid):
                    _kind, v = await mesh.one(made, (mib,))
                pipe_bytes.append(mesh.ex.pipe_bytes_in - before)
                spill.delete(v.source)
                with res.step("pipe", peer):
                    pool.apply(made, (mib,))

                with res.step("mesh_read", mesh.pid):
                    _kind, v = await mesh.one(made, (mib,))
                    assert float(loads(v.header, v.buffers).sum()) == want
                spill.delete(v.source)
                with res.step("pipe_read", peer):
                    assert float(pool.apply(made, (mib,)).sum()) == want

                with inp.step("mesh", mesh.pid):
                    kind, payload = await mesh.one(total, (_Key("k"),), deps)
                assert P.loads_value(kind, payload) == want
                with inp.step("pipe", peer):
                    assert pool.apply(total, (made(mib),)) == want
    finally:
        await mesh.ex.stop()
    return {"result": {**res.rates(nbytes), "mesh_pipe_bytes": max(pipe_bytes)},
            "input": inp.rates(nbytes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.handoff", description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="array size in MiB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spill-dir", default=None,
                        help="where the spill directory goes (default: the system's temp dir)")
    args = parser.parse_args(argv)
    spill = FileSpillDir.temporary(prefix="mesh-bench-handoff-") if args.spill_dir is None \
        else FileSpillDir(tempfile.mkdtemp(prefix="mesh-bench-handoff-", dir=args.spill_dir),
                          owned=True)
    try:
        figures = asyncio.run(_measure(args.mib, args.repeat, spill))
        fs = _fs(spill.path)
    finally:
        spill.close()
    print(json.dumps({"bench": "handoff", "array_mib": args.mib, "repeat": args.repeat,
                      "spill_dir_fs": fs, **figures}))
    return 0


def _fs(path: str) -> str:
    """The file system type under the spill directory (page cache or disk)."""
    best = ("", "?")
    with open("/proc/mounts") as mounts:
        for line in mounts:
            _dev, mount, fstype, *_ = line.split()
            if os.path.dirname(path).startswith(mount) and len(mount) > len(best[0]):
                best = (mount, fstype)
    return best[1]


if __name__ == "__main__":
    raise SystemExit(main())
