"""A node's store of values, driven on its event loop: one :class:`Store`
(budget, spill, references) and one spill directory, with every disk
operation carried out off the loop through :meth:`Runtime.run_blocking`
(inline in the simulator, whose spill directory is a
:class:`~mesh.store.MemorySpillDir`).

The exec layer keeps a value here under its task key with one holder,
``(REPLICA, key)``, while its core still needs it (a result held, an input
of a local task, a transfer not yet handed over); :meth:`NodeStore.keep`
releases the rest. Values that arrive by transfer or from a worker are
already complete in a file of the spill directory (``Value.source``) and
are adopted as they are: no second write.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import mmap
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from mesh.errors import OutOfStorage
from mesh.metrics import Metrics
from mesh.store._chunks import FileSink, MemorySink, Sink
from mesh.store._core import CACHED, Store, StoreStats
from mesh.store._events import (
    Adopt,
    DeleteSpill,
    DiskFull,
    Effect,
    Event,
    Loaded,
    Put,
    PutRefused,
    ReadBack,
    Release,
    Spilled,
    SpillFailed,
    WriteSpill,
)
from mesh.store._spill import FileSpillDir, SpillDir
from mesh.store._values import REPLICA, Value

__all__ = ["NodeStore"]

log = logging.getLogger("mesh.store")


class NodeStore:
    """The values one node holds. ``runtime`` gives the clock and
    ``run_blocking``; ``spill`` is closed (its files deleted, a temporary
    directory removed) by :meth:`close`."""

    def __init__(self, node: str, spill: SpillDir, runtime: Any, *, memory_limit: int,
                 disk_limit: int, metrics: Metrics | None = None) -> None:
        self.spill = spill
        self.runtime = runtime
        self.metrics = metrics if metrics is not None else Metrics()
        self.store = Store(node, spill.path, memory_limit=memory_limit, disk_limit=disk_limit)
        self._names = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self.on_spilled: Callable[[str, Value, Value], None] | None = None
        """Told ``(key, value, mapped)`` when a value in memory was written to
        the spill directory: whoever holds ``value`` swaps it for ``mapped``
        (a map of the file), so the memory is freed."""
        self._mapped: dict[str, Value] = {}
        """File-backed values this process holds mapped (state ``CACHED``)."""

    # ------------------------------------------------------------- values
    def new_name(self) -> str:
        """A fresh file name in the spill directory for a value this node
        writes or receives (never a name of the store's own ``.spill`` files)."""
        return f"{next(self._names):016x}.value"

    def sink(self, sizes: Sequence[int]) -> tuple[Sink, str | None]:
        """Where an incoming transfer of ``sizes`` lands: a new file of the
        spill directory (named, so it can be adopted) or memory."""
        if isinstance(self.spill, FileSpillDir):
            name = self.new_name()
            return FileSink(self.spill, name, sizes), name
        return MemorySink(sizes), None

    def sink_factory(self) -> tuple[Callable[[Sequence[int]], Sink], list[str | None]]:
        """A ``make_sink`` for a :class:`~mesh.store.Receiver` and the list
        that receives the name of each sink it made (the last is the one
        that completed)."""
        names: list[str | None] = []

        def make(sizes: Sequence[int]) -> Sink:
            sink, name = self.sink(sizes)
            names.append(name)
            return sink
        return make, names

    def adopt(self, key: str, value: Value) -> OutOfStorage | None:
        """Keep ``value`` for ``key``: its file (``value.source``) as it is,
        or its memory. An error when memory and disk cannot hold it (the file
        is deleted then)."""
        holder = (REPLICA, key)
        event: Event = (Put(key, value, holder) if value.source is None
                        else Adopt(key, value, value.source, holder))
        for eff in self._handle(event):
            if isinstance(eff, PutRefused) and eff.key == key:
                return eff.error
        if value.source is not None and key not in self._mapped:
            self._mapped[key] = value
        self._unmap_evicted()
        return None

    def _unmap_evicted(self) -> None:
        """A file-backed value the budget evicted leaves this process's memory:
        its pages are dropped from the map (``MADV_DONTNEED``; the kernel reads
        them back from the spill file if the value is used again)."""
        store = self.store
        for key in [k for k, v in self._mapped.items() if store.state(k) != CACHED]:
            value = self._mapped.pop(key)
            if store.state(key) is None:
                continue
            for buf in value.buffers:
                owner = buf.obj
                if isinstance(owner, mmap.mmap) and not owner.closed:
                    owner.madvise(mmap.MADV_DONTNEED)
                    self.metrics.inc("store_unmapped_bytes", buf.nbytes)

    def release(self, key: str) -> None:
        self._mapped.pop(key, None)
        self._handle(Release(key, (REPLICA, key)))

    def keep(self, needed: Callable[[str], bool]) -> int:
        """Release every value ``needed`` says no longer is; how many went."""
        gone = [k for k in self.store.held() if not needed(k)]
        for key in gone:
            self.release(key)
        return len(gone)

    def __contains__(self, key: str) -> bool:
        return key in self.store

    def stats(self) -> StoreStats:
        return self.store.stats()

    # ------------------------------------------------------------ effects
    def _handle(self, event: Event) -> list[Effect]:
        effects = self.store.handle(event, self.runtime.now())
        for eff in effects:
            if isinstance(eff, WriteSpill):
                self._spawn(self._write_spill(eff))
            elif isinstance(eff, ReadBack):
                self._spawn(self._read_back(eff))
            elif isinstance(eff, DeleteSpill):
                self._spawn(self.runtime.run_blocking(self.spill.delete, eff.name))
            elif isinstance(eff, DiskFull):
                self.metrics.inc("store_disk_full")
                log.warning("%s", eff.error)
            elif isinstance(eff, PutRefused):
                self.metrics.inc("store_put_refused")
                log.warning("%s", eff.error)
        return effects

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_spill(self, eff: WriteSpill) -> None:
        spill = self.spill

        def work() -> Value:
            spill.write(eff.name, eff.value)
            return replace(spill.read(eff.name), source=eff.name)
        try:
            mapped = await self.runtime.run_blocking(work)
        except OSError as exc:
            self._handle(SpillFailed(eff.key, eff.serial, str(exc)))
        else:
            self.metrics.inc("store_spilled")
            self._handle(Spilled(eff.key, eff.serial))
            if self.on_spilled is not None and eff.key in self.store:
                self.on_spilled(eff.key, eff.value, mapped)

    async def _read_back(self, eff: ReadBack) -> None:
        value = await self.runtime.run_blocking(self.spill.read, eff.name)
        self._handle(Loaded(eff.key, eff.serial, value))

    async def close(self) -> None:
        """Wait for the disk work in flight, then delete every file."""
        self._closed = True
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.spill.close()
