"""The store with a spill directory: one suite run against every SpillDir
(files in a directory, and a dictionary), trio style."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from mesh.errors import MeshError, OutOfStorage
from mesh.store import (
    CACHED,
    CLIENT,
    DISK,
    MEMORY,
    REPLICA,
    TASK,
    FileSpillDir,
    LocalStore,
    MemorySpillDir,
    SpillDir,
    Store,
    Value,
)


def val(n: int, fill: int = 1, parts: int = 1) -> Value:
    """A value of ``n`` bytes: a 4-byte header and ``parts`` buffers."""
    body = n - 4
    sizes = [body // parts] * parts
    sizes[-1] += body - sum(sizes)
    return Value.of(b"head", [bytes([fill + i]) * s for i, s in enumerate(sizes)])


A = (CLIENT, "1")


class StoreSuite:
    """What every SpillDir must give the store."""

    def make_spill(self, tmp_path: Path) -> SpillDir:
        raise NotImplementedError

    @pytest.fixture
    def spill(self, tmp_path: Path):
        s = self.make_spill(tmp_path)
        yield s
        s.close()

    def local(self, spill: SpillDir, memory: int = 1000, disk: int = 10_000) -> LocalStore:
        return LocalStore(Store("n1", spill.path, memory_limit=memory, disk_limit=disk),
                          spill, lambda: 0.0)

    def test_put_then_get_returns_the_same_bytes(self, spill):
        s = self.local(spill)
        v = val(300, parts=3)
        s.put("a", v, A)
        assert s.get("a").same_bytes(v)
        assert s.stats().as_dict() == {"memory_bytes": 300, "disk_bytes": 0, "values": 1,
                                       "spilled": 0, "memory_limit": 1000, "disk_limit": 10_000}

    def test_past_the_budget_the_least_recently_used_value_spills(self, spill):
        s = self.local(spill, memory=250)
        for k in "abc":
            s.put(k, val(100, fill=ord(k)), A)
        assert s.store.state("a") == DISK
        assert s.store.lru_order() == ["b", "c"]
        assert len(spill.names()) == 1
        st = s.stats()
        assert (st.memory_bytes, st.disk_bytes, st.values, st.spilled) == (200, 100, 3, 1)

    def test_a_spilled_value_is_read_back_on_demand_and_pushes_out_the_next_oldest(self, spill):
        s = self.local(spill, memory=250)
        vals = {k: val(100, fill=ord(k), parts=2) for k in "abc"}
        for k, v in vals.items():
            s.put(k, v, A)
        back = s.get("a")
        assert back.same_bytes(vals["a"])
        assert s.store.state("a") == CACHED  # in memory, its file kept
        assert s.store.state("b") == DISK
        assert s.store.lru_order() == ["c", "a"]
        assert s.get("b").same_bytes(vals["b"])
        assert s.store.state("a") == CACHED and s.store.state("c") == DISK

    def test_reading_a_value_makes_it_the_most_recently_used(self, spill):
        s = self.local(spill, memory=300)
        for k in "abc":
            s.put(k, val(100), A)
        s.get("a")
        s.put("d", val(100), A)
        assert s.store.state("b") == DISK
        assert s.store.state("a") == MEMORY

    def test_evicting_a_read_back_value_writes_nothing_again(self, spill):
        s = self.local(spill, memory=100)
        s.put("a", val(100), A)
        s.put("b", val(100), A)  # a spills
        s.get("a")  # a back, b spills
        names = spill.names()
        s.get("b")  # b back, a dropped from memory without a write
        assert spill.names() == names
        assert s.stats().disk_bytes == 200

    def test_the_last_release_frees_memory_and_the_spill_file(self, spill):
        s = self.local(spill, memory=100)
        s.put("a", val(100), A)
        s.hold("a", (TASK, "t"))
        s.put("b", val(100), (REPLICA, "b"))
        assert len(spill.names()) == 1
        s.release("a", A)
        assert "a" in s.store  # the task still holds it
        s.release("a", (TASK, "t"))
        assert "a" not in s.store
        assert spill.names() == []
        assert s.stats().as_dict()["values"] == 1
        with pytest.raises(KeyError):
            s.get("a")

    def test_a_second_put_of_a_key_keeps_the_first_value_and_adds_the_holder(self, spill):
        s = self.local(spill)
        first = val(100, fill=1)
        s.put("a", first, A)
        s.put("a", val(100, fill=9), (TASK, "t"))
        assert s.get("a").same_bytes(first)
        assert s.store.holders("a") == {A, (TASK, "t")}

    def test_a_value_larger_than_the_budget_goes_to_disk_and_reads_back(self, spill):
        s = self.local(spill, memory=100)
        v = val(1000, parts=4)
        s.put("big", v, A)
        assert s.store.state("big") == DISK
        assert s.get("big").same_bytes(v)

    def test_more_than_memory_and_disk_hold_is_refused_naming_node_directory_and_limit(
            self, spill):
        s = self.local(spill, memory=200, disk=300)
        for k in "abcde":
            s.put(k, val(100), A)
        with pytest.raises(OutOfStorage) as info:
            s.put("f", val(100), A)
        err = info.value
        assert isinstance(err, MeshError)
        text = str(err)
        assert "n1" in text and spill.path in text and "300" in text
        assert (err.node, err.directory, err.limit) == ("n1", spill.path, 300)
        assert "f" not in s.store
        for k in "abcde":  # nothing else stopped working
            assert s.get(k).nbytes == 100

    def test_read_back_buffers_are_read_only(self, spill):
        s = self.local(spill, memory=10)
        s.put("a", val(100, parts=2), A)
        back = s.get("a")
        assert all(b.readonly for b in back.buffers)

    def test_an_empty_value_and_empty_buffers_survive_a_spill(self, spill):
        s = self.local(spill, memory=0)
        v = Value.of(b"", [b"", b"x", b""])
        s.put("a", v, A)
        assert s.store.state("a") == DISK
        assert s.get("a").same_bytes(v)


    def test_a_value_adopted_with_its_file_is_never_written_again(self, spill):
        s = self.local(spill, memory=150)
        v = val(100, parts=2)
        spill.write("in-a", v)
        s.adopt("a", "in-a", A)
        assert s.store.state("a") == CACHED
        st = s.stats()
        assert (st.memory_bytes, st.disk_bytes) == (100, 100)
        s.put("b", val(100), A)  # over budget: a leaves memory without a write
        assert s.store.state("a") == DISK and spill.names() == ["in-a"]
        assert s.get("a").same_bytes(v)
        s.release("a", A)
        assert "in-a" not in spill.names()

    def test_adopting_a_key_already_held_or_too_large_deletes_the_file(self, spill):
        s = self.local(spill, memory=100, disk=100)
        s.put("a", val(100), A)
        spill.write("in-a", val(100, fill=7))
        s.adopt("a", "in-a", (TASK, "t"))
        assert spill.names() == [] and s.store.holders("a") == {A, (TASK, "t")}
        spill.write("in-b", val(150))
        with pytest.raises(OutOfStorage):
            s.adopt("b", "in-b", A)
        assert spill.names() == [] and "b" not in s.store


class TestFileSpillDir(StoreSuite):
    def make_spill(self, tmp_path: Path) -> SpillDir:
        return FileSpillDir(str(tmp_path / "spill"))

    def test_read_back_is_memory_mapped_and_64_byte_aligned(self, spill):
        import mmap

        s = self.local(spill, memory=10)
        s.put("a", Value.of(b"hdr", [b"x" * 1000, b"y" * 77, b"z" * 5000]), A)
        back = s.get("a")
        for buf in back.buffers:
            assert isinstance(buf.obj, mmap.mmap)
            np = pytest.importorskip("numpy")
            assert np.frombuffer(buf, dtype=np.uint8).ctypes.data % 64 == 0

    def test_writing_a_spill_file_does_not_join_the_buffers(self, spill):
        np = pytest.importorskip("numpy")
        parts = [np.full(8 << 20, i, dtype=np.uint8) for i in range(4)]  # 32 MiB
        v = Value.of(b"h", [memoryview(p) for p in parts])
        tracemalloc.start()
        try:
            spill.write("x", v)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20
        assert spill.read("x").same_bytes(v)

    def test_a_temporary_spill_dir_is_removed_on_close(self):
        d = FileSpillDir.temporary()
        d.write("a", val(10))
        assert os.path.isdir(d.path)
        d.close()
        assert not os.path.exists(d.path)


class TestMemorySpillDir(StoreSuite):
    def make_spill(self, tmp_path: Path) -> SpillDir:
        return MemorySpillDir()

    def test_a_full_disk_keeps_the_value_in_memory_and_reports_it(self):
        spill = MemorySpillDir(capacity=150, path="/full")
        s = self.local(spill, memory=100)
        s.put("a", val(100), A)
        s.put("b", val(100), A)  # a spills: 100 of 150
        s.put("c", val(100), A)  # b's write fails: ENOSPC
        assert len(s.disk_errors) == 1
        err = s.disk_errors[0]
        assert "n1" in str(err) and "/full" in str(err) and err.limit == 100
        assert s.store.state("b") == MEMORY
        assert s.get("b").nbytes == 100 and s.get("c").nbytes == 100
        with pytest.raises(OutOfStorage):
            s.put("d", val(100), A)
