"""Values between a node and its workers without pipe copies: the real
process pool with a spill directory (mesh.exec._handoff)."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mesh.config import Config
from mesh.exec import ProcessExecutor
from mesh.exec._handoff import adopt_result, encode_result, load_dep, write_result
from mesh.exec._worker import _Runner
from mesh.protocol import payload as P
from mesh.store import FileSpillDir, MemorySpillDir, Value, dumps, loads
from tests.test_exec_pool import Collector, job

MIB = 1 << 20


def make_array(mib: int) -> np.ndarray:
    return np.arange(mib * MIB // 8, dtype=np.float64)


def small(x: int) -> list[int]:
    return [x, x + 1]


def a_lock(x: int) -> object:
    return threading.Lock()


def inspect_input(arr: np.ndarray) -> dict[str, Any]:
    rss = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmRSS:")))
    return {"owndata": bool(arr.flags.owndata), "writeable": bool(arr.flags.writeable),
            "sum": float(arr.sum()), "rss_kib": rss, "nbytes": arr.nbytes}


def dep_job(tid: str, fn: object, key: str, value: Value) -> list:
    class Fut:
        _mesh_future_ = True

        def __init__(self, key: str) -> None:
            self.key = key

    akind, payload, _ = P.dumps_args((Fut(key),), {})
    return [tid, P.dumps_function(fn), akind, payload, {key: [P.OK_VALUE, value]}]


@contextlib.asynccontextmanager
async def running(workers: int, spill_dir: str | None = None,
                  patch: Callable[[ProcessExecutor], None] | None = None
                  ) -> AsyncIterator[tuple[ProcessExecutor, Collector]]:
    ex = ProcessExecutor(workers, spill_dir=spill_dir)
    if patch is not None:
        patch(ex)
    out = Collector()
    await ex.start(out)
    try:
        yield ex, out
    finally:
        await ex.stop()


def spill_files(path: Path) -> list[str]:
    return sorted(os.listdir(path))


async def test_a_large_result_reaches_the_node_as_a_mapped_file_not_through_the_pipe(
        tmp_path: Path) -> None:
    async with running(1, spill_dir=str(tmp_path)) as (ex, out):
        ex.run([job("big", make_array, 64), job("small", small, 3)])
        await out.wait(2)
        kind, value = out.got["big"]
        assert kind == P.OK_VALUE and isinstance(value, Value)
        assert ex.pipe_bytes_in < MIB  # 64 MiB made, a name and sizes sent
        assert value.source is not None and spill_files(tmp_path) == [value.source]
        arr = loads(value.header, value.buffers)
        assert np.array_equal(arr, make_array(64))
        assert not arr.flags.owndata and not arr.flags.writeable  # a view of the file's map
        assert P.loads_value(*out.got["small"]) == [3, 4]  # small results keep the pipe


async def test_without_a_spill_dir_a_large_result_goes_through_the_pipe(tmp_path: Path) -> None:
    async with running(1) as (ex, out):
        ex.run([job("big", make_array, 2)])
        await out.wait(1)
        kind, payload = out.got["big"]
        assert kind == P.OK_PICKLE and np.array_equal(P.loads_value(kind, payload),
                                                      make_array(2))
        assert ex.pipe_bytes_in > 2 * MIB


async def test_a_value_input_with_a_file_reaches_the_worker_mapped_not_copied(
        tmp_path: Path) -> None:
    spill = FileSpillDir(str(tmp_path))
    header, buffers = dumps(make_array(64))
    spill.write("input-1", Value(header, tuple(buffers)))
    mapped = spill.read("input-1")
    value = Value(mapped.header, mapped.buffers, source="input-1")
    async with running(1, spill_dir=str(tmp_path)) as (ex, out):
        ex.run([dep_job("base", inspect_input, "k0", Value.of(*dumps(make_array(1))))])
        await out.wait(1)
        base = P.loads_value(*out.got["base"])
        sent = ex.pipe_bytes_out
        ex.run([dep_job("read", inspect_input, "k1", value)])
        await out.wait(2)
        got = P.loads_value(*out.got["read"])
        assert ex.pipe_bytes_out - sent < MIB  # the name, not the bytes
        assert got["nbytes"] == 64 * MIB and got["sum"] == float(make_array(64).sum())
        assert not got["owndata"] and not got["writeable"]
        # summing maps the page cache into the worker (shared, so RSS counts it), but no
        # second copy: growth stays near the file's size, not twice it
        assert got["rss_kib"] - base["rss_kib"] < 64 * 1024 + 32 * 1024
        assert spill_files(tmp_path) == ["input-1"]  # the node's file is left alone


async def test_a_memory_only_value_input_is_written_once_and_deleted_when_done(
        tmp_path: Path) -> None:
    value = Value.of(*dumps(make_array(8)))
    async with running(2, spill_dir=str(tmp_path)) as (ex, out):
        ex.run([dep_job(f"r{i}", inspect_input, "k", value) for i in range(4)]
               + [job("after", small, 1)])
        await out.wait(5)
        for i in range(4):
            got = P.loads_value(*out.got[f"r{i}"])
            assert got["sum"] == float(make_array(8).sum()) and not got["owndata"]
        assert ex.pipe_bytes_out < MIB
        assert P.loads_value(*out.got["after"]) == [1, 2]
        assert spill_files(tmp_path) == []
        assert len(ex._inputs) == 0


async def test_without_a_spill_dir_a_value_input_goes_through_the_pipe() -> None:
    async with running(1) as (ex, out):
        ex.run([dep_job("r", inspect_input, "k", Value.of(*dumps(make_array(1))))])
        await out.wait(1)
        assert P.loads_value(*out.got["r"])["sum"] == float(make_array(1).sum())


@pytest.mark.parametrize("spill", [True, False])
async def test_an_unpicklable_result_fails_the_task_naming_its_type(
        tmp_path: Path, spill: bool) -> None:
    async with running(1, spill_dir=str(tmp_path) if spill else None) as (ex, out):
        ex.run([job("lock", a_lock, 1), job("after", small, 1)])
        await out.wait(2)
        kind, payload = out.got["lock"]
        assert kind == P.FAILED
        assert b"'lock'" in payload and b"_thread.lock" in payload
        assert P.loads_value(*out.got["after"]) == [1, 2]


def make_kib(kib: int) -> np.ndarray:
    return np.zeros(kib * 1024, dtype=np.uint8)


def test_a_full_disk_fails_the_result_naming_the_directory_and_its_limit() -> None:
    spill = MemorySpillDir(capacity=MIB, path="/srv/mesh/spill")
    runner = _Runner(spill, "w-", Config().oob_threshold)
    _tid, kind, payload = runner.run(job("big", make_kib, 2048))
    assert kind == P.FAILED
    text = payload.decode()
    assert "'big'" in text and "/srv/mesh/spill" in text and "the disk is full" in text
    assert f"its limit is {MIB} bytes" in text
    assert spill.names() == []
    # the runner keeps working: a small result keeps the pipe, one that fits is handed over
    assert runner.run(job("small", make_kib, 1))[1] == P.OK_PICKLE
    _tid, kind, (name, _sizes) = runner.run(job("fits", make_kib, 512))
    assert kind == P.OK_VALUE and spill.names() == [name]


_FULL_DISK = """
import errno, os
import mesh.store._spill as spill

_write_all = spill._write_all


def _full(fd, data):
    view = memoryview(data).cast("B")
    if view.nbytes <= (1 << 20):
        return _write_all(fd, view)
    _write_all(fd, view[:view.nbytes // 2])  # half of a large buffer, then the disk is full
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


spill._write_all = _full
"""


async def test_a_worker_whose_disk_fills_mid_write_fails_that_task_and_keeps_working(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_FULL_DISK)  # runs in each worker at start
    monkeypatch.setenv("PYTHONPATH", str(hook))
    spill = tmp_path / "spill"
    async with running(1, spill_dir=str(spill)) as (ex, out):
        ex.run([job("big", make_kib, 2048)])
        await out.wait(1)
        kind, payload = out.got["big"]
        assert kind == P.FAILED and b"'big'" in payload and str(spill).encode() in payload
        assert b"the disk is full" in payload and b"file system has" in payload
        assert spill_files(spill) == []  # the half-written .part is gone
        ex.run([job("fits", make_kib, 512)])
        await out.wait(2)
        kind, value = out.got["fits"]
        assert kind == P.OK_VALUE and spill_files(spill) == [value.source]
        assert ex.restarts == 0


class FailingSpillDir(FileSpillDir):
    """Writes a little, then the disk is full (what ENOSPC mid-write does)."""

    def write(self, name: str, value: Value) -> None:
        part = self.file(name) + ".part"
        with open(part, "wb") as f:
            f.write(b"x" * 100)
        os.unlink(part)  # FileSpillDir.write deletes its .part when a write fails
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)


def test_a_disk_full_mid_write_leaves_no_file(tmp_path: Path) -> None:
    value = Value.of(*dumps(make_array(1)))
    kind, payload = write_result("t", FailingSpillDir(str(tmp_path)), "w-0", value)
    assert kind == P.FAILED and str(tmp_path).encode() in payload
    assert b"file system has" in payload  # the limit of a real directory: its free space
    assert spill_files(tmp_path) == []


def test_results_and_inputs_round_trip_through_the_handoff_functions(tmp_path: Path) -> None:
    spill = FileSpillDir(str(tmp_path))
    arr = make_array(1)
    value = encode_result("t", arr, 1024)
    assert isinstance(value, Value)
    kind, (name, sizes) = write_result("t", spill, "w-0", value)
    kind, adopted = adopt_result("t", spill, name, sizes)
    assert kind == P.OK_VALUE and adopted.source == "w-0"
    assert np.array_equal(load_dep(P.OK_VALUE, "w-0", spill), arr)
    assert np.array_equal(load_dep(P.OK_VALUE, adopted, None), arr)
    assert np.array_equal(load_dep(P.OK_VALUE, [adopted.header, *adopted.buffers], None), arr)
    kind, payload = adopt_result("t", spill, name, [1, 2])
    assert kind == P.FAILED and b"holds segments" in payload
    large = encode_result("t", b"x" * (1 << 16), 1 << 16)
    assert isinstance(large, Value) and loads(large.header, large.buffers) == b"x" * (1 << 16)
    assert encode_result("t", b"x" * 100, 1 << 16) == P.dumps_value(b"x" * 100)
    kind, payload = encode_result("t", memoryview(b"x" * 5000), 1 << 16)
    assert kind == P.OK_PICKLE and bytes(P.loads_value(kind, payload)) == b"x" * 5000


async def test_an_input_the_disk_cannot_hold_fails_its_jobs_and_the_pool_keeps_working(
        tmp_path: Path) -> None:
    def patch_inputs(ex: ProcessExecutor) -> None:
        ex._inputs._spill = FailingSpillDir(str(tmp_path))  # type: ignore[union-attr]

    async with running(1, spill_dir=str(tmp_path), patch=patch_inputs) as (ex, out):
        value = Value.of(*dumps(make_array(1)))
        ex.run([job("before", small, 1)])
        ex.run_solo(dep_job("r", inspect_input, "k", value))
        ex.run([job("after", small, 2)])
        await out.wait(3)
        kind, payload = out.got["r"]
        assert kind == P.FAILED and b"'r' cannot start" in payload
        assert b"the disk is full" in payload and str(tmp_path).encode() in payload
        assert P.loads_value(*out.got["before"]) == [1, 2]
        assert P.loads_value(*out.got["after"]) == [2, 3]
        assert spill_files(tmp_path) == [] and len(ex._inputs) == 0


async def test_a_worker_killed_mid_write_leaves_no_file_counted_as_a_value(
        tmp_path: Path) -> None:
    async with running(1, spill_dir=str(tmp_path)) as (ex, out):
        ex.run_solo(job("dies", _dies_mid_write, str(tmp_path)))
        await out.wait(1)
        assert out.got["dies"][0] == P.CRASHED
        assert spill_files(tmp_path) == []  # the .part and the unreported file are gone
        assert FileSpillDir(str(tmp_path)).names() == []
        ex.run([job("after", make_array, 1)])
        await out.wait(2)
        kind, value = out.got["after"]
        assert kind == P.OK_VALUE and spill_files(tmp_path) == [value.source]


def _dies_mid_write(path: str) -> None:
    """Leaves what a worker killed while writing leaves: a complete file it
    never reported and a ``.part``, under its own prefix, then dies."""
    prefix = sys.argv[2]  # python -m mesh.exec._worker SPILL_DIR PREFIX OOB_THRESHOLD
    Path(path, f"{prefix}0").write_bytes(b"x" * 64)
    Path(path, f"{prefix}1.part").write_bytes(b"x" * 64)
    os._exit(9)
