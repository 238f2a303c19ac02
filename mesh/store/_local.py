"""A synchronous driver: a :class:`Store` whose effects are carried out at
once against a :class:`SpillDir`. The shared test suite and the benchmark use
it; the node's asyncio driver (not written yet) will do the same work with the
disk I/O off the event loop."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from mesh.errors import OutOfStorage
from mesh.store._core import Store, StoreStats
from mesh.store._events import (
    Adopt,
    DeleteSpill,
    Deliver,
    DiskFull,
    Effect,
    Event,
    Get,
    Hold,
    Loaded,
    Missing,
    Put,
    PutRefused,
    ReadBack,
    Release,
    Spilled,
    SpillFailed,
    WriteSpill,
)
from mesh.store._spill import SpillDir
from mesh.store._values import Holder, Value


class LocalStore:
    """``put`` / ``get`` / ``hold`` / ``release`` on a store and a spill
    directory. ``clock`` is the runtime's clock (the store only records it)."""

    def __init__(self, store: Store, spill: SpillDir, clock: Callable[[], float]) -> None:
        self.store = store
        self.spill = spill
        self.clock = clock
        self.disk_errors: list[OutOfStorage] = []
        """Spill writes the disk refused (the values stayed in memory)."""

    def _run(self, event: Event) -> list[Effect]:
        done: list[Effect] = []
        todo: deque[Event] = deque([event])
        while todo:
            for eff in self.store.handle(todo.popleft(), self.clock()):
                done.append(eff)
                if isinstance(eff, WriteSpill):
                    try:
                        self.spill.write(eff.name, eff.value)
                    except OSError as exc:
                        todo.append(SpillFailed(eff.key, eff.serial, str(exc)))
                    else:
                        todo.append(Spilled(eff.key, eff.serial))
                elif isinstance(eff, ReadBack):
                    todo.append(Loaded(eff.key, eff.serial, self.spill.read(eff.name)))
                elif isinstance(eff, DeleteSpill):
                    self.spill.delete(eff.name)
                elif isinstance(eff, DiskFull):
                    self.disk_errors.append(eff.error)
        return done

    def put(self, key: str, value: Value, holder: Holder) -> None:
        """Store ``value``; raises :class:`OutOfStorage` when it does not fit."""
        for eff in self._run(Put(key, value, holder)):
            if isinstance(eff, PutRefused):
                raise eff.error

    def adopt(self, key: str, name: str, holder: Holder) -> None:
        """Take the value complete in spill file ``name`` as it is (no second
        write); raises :class:`OutOfStorage` (and deletes the file) when it
        does not fit."""
        for eff in self._run(Adopt(key, self.spill.read(name), name, holder)):
            if isinstance(eff, PutRefused):
                raise eff.error

    def get(self, key: str) -> Value:
        """The value of ``key``, read back from disk if it was spilled."""
        reader = object()
        for eff in self._run(Get(key, reader)):
            if isinstance(eff, Deliver) and eff.reader is reader:
                return eff.value
            if isinstance(eff, Missing) and eff.reader is reader:
                break
        raise KeyError(key)

    def hold(self, key: str, holder: Holder) -> None:
        self._run(Hold(key, holder))

    def release(self, key: str, holder: Holder) -> None:
        self._run(Release(key, holder))

    def stats(self) -> StoreStats:
        return self.store.stats()
