"""A node's values as a sans-IO state machine: a memory budget, least
recently used spill to a directory, read-back on demand, references.

Feed events with :meth:`Store.handle`; it returns effects for the driver to
carry out (write or read a spill file, deliver a value, report a refusal).
No disk, no clock, no threads here: the same events give the same effects.

Each value is in one state; moves between states follow ``TRANSITIONS``::

    MEMORY   --evict-->   SPILLING --Spilled-->  DISK --Get--> LOADING --Loaded--> CACHED
    SPILLING --SpillFailed--> MEMORY                        CACHED --evict--> DISK

``CACHED`` is a value read back from its file (or adopted with its file,
:class:`Adopt`): values are immutable, so the file stays and evicting it
again costs no write. Memory holds ``MEMORY``,
``SPILLING`` (until its write is done) and ``CACHED`` values; the disk holds
``SPILLING`` (reserved), ``DISK``, ``LOADING`` and ``CACHED`` ones.

Budget rule: after every event, while the memory left after the writes in
flight is over ``memory_limit``, the least recently used value in memory
leaves it (``CACHED`` ones are dropped, ``MEMORY`` ones are written if the
disk has room for them, otherwise passed over). A :class:`Put` is refused
with :class:`OutOfStorage` when the bytes of all values plus the new one
exceed ``memory_limit + disk_limit``; nothing else changes then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesh.errors import OutOfStorage
from mesh.store._events import (
    Adopt,
    DeleteSpill,
    Deliver,
    DiskFull,
    Effect,
    Event,
    Freed,
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
from mesh.store._values import Holder, Value

MEMORY = "memory"
SPILLING = "spilling"
DISK = "disk"
LOADING = "loading"
CACHED = "cached"

EVICT = "evict"
"""The store's own decision to make room (not an event from outside)."""

TRANSITIONS: dict[tuple[str, object], str] = {
    (MEMORY, EVICT): SPILLING,
    (CACHED, EVICT): DISK,
    (SPILLING, Spilled): DISK,
    (SPILLING, SpillFailed): MEMORY,
    (DISK, Get): LOADING,
    (LOADING, Loaded): CACHED,
}
IN_MEMORY = frozenset({MEMORY, SPILLING, CACHED})
ON_DISK = frozenset({SPILLING, DISK, LOADING, CACHED})


def spill_name(serial: int) -> str:
    """The spill file of the value numbered ``serial`` (keys may hold any
    character; file names never do)."""
    return f"{serial:016x}.spill"


@dataclass(frozen=True, slots=True)
class StoreStats:
    """The store's figures for the node's stats."""

    memory_bytes: int
    disk_bytes: int
    values: int
    spilled: int
    """Values whose bytes are only on disk."""
    memory_limit: int
    disk_limit: int

    def as_dict(self) -> dict[str, int]:
        return {"memory_bytes": self.memory_bytes, "disk_bytes": self.disk_bytes,
                "values": self.values, "spilled": self.spilled,
                "memory_limit": self.memory_limit, "disk_limit": self.disk_limit}


@dataclass(slots=True, eq=False)
class _Entry:
    key: str
    serial: int
    nbytes: int
    value: Value | None
    holders: set[Holder]
    state: str = MEMORY
    readers: list[object] = field(default_factory=list)
    name: str = ""
    """Its spill file: ``spill_name(serial)``, or the adopted file's name."""


class Store:
    """Every value one node holds. ``directory`` is only named in errors."""

    def __init__(self, node: str, directory: str, *, memory_limit: int, disk_limit: int) -> None:
        if memory_limit < 0 or disk_limit < 0:
            raise ValueError("memory_limit and disk_limit must be >= 0")
        self.node = node
        self.directory = directory
        self.memory_limit = memory_limit
        self.disk_limit = disk_limit
        self.now = 0.0
        self._entries: dict[str, _Entry] = {}
        self._lru: dict[str, None] = {}
        """Keys whose value is in memory, least recently used first."""
        self._serial = 0
        self.memory_bytes = 0
        self.disk_bytes = 0
        self.total_bytes = 0
        self._spilling_bytes = 0

    # ------------------------------------------------------------ queries
    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def state(self, key: str) -> str | None:
        entry = self._entries.get(key)
        return entry.state if entry else None

    def holders(self, key: str) -> frozenset[Holder]:
        entry = self._entries.get(key)
        return frozenset(entry.holders) if entry else frozenset()

    def held(self) -> list[str]:
        """Every key held, in the order they were stored."""
        return list(self._entries)

    def lru_order(self) -> list[str]:
        """Keys in memory, least recently used first."""
        return list(self._lru)

    def stats(self) -> StoreStats:
        spilled = sum(1 for e in self._entries.values() if e.state in (DISK, LOADING))
        return StoreStats(self.memory_bytes, self.disk_bytes, len(self._entries), spilled,
                          self.memory_limit, self.disk_limit)

    # ------------------------------------------------------------- events
    def handle(self, event: Event, now: float) -> list[Effect]:
        """Apply one event; return what the driver must do, in order."""
        self.now = now
        out: list[Effect] = []
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"the store takes no event of type {type(event).__name__}")
        handler(self, event, out)
        self._make_room(out)
        return out

    def _move(self, entry: _Entry, cause: object) -> None:
        try:
            entry.state = TRANSITIONS[entry.state, cause]
        except KeyError:
            name = cause if isinstance(cause, str) else getattr(cause, "__name__", cause)
            raise AssertionError(f"no transition from {entry.state} on {name}") from None

    def _put(self, ev: Put | Adopt, out: list[Effect]) -> _Entry | None:
        entry = self._entries.get(ev.key)
        if entry is not None:
            entry.holders.add(ev.holder)
            return None
        n = ev.value.nbytes
        if self.total_bytes + n > self.memory_limit + self.disk_limit:
            out.append(PutRefused(ev.key, OutOfStorage(
                self.node, self.directory, self.disk_limit, n, self.disk_bytes)))
            return None
        self._serial += 1
        entry = _Entry(ev.key, self._serial, n, ev.value, {ev.holder},
                       name=spill_name(self._serial))
        self._entries[ev.key] = entry
        self._lru[ev.key] = None
        self.memory_bytes += n
        self.total_bytes += n
        return entry

    def _adopt(self, ev: Adopt, out: list[Effect]) -> None:
        entry = self._put(ev, out)
        if entry is None:  # already held, or refused: the file is not needed
            out.append(DeleteSpill(ev.name))
            return
        entry.state = CACHED
        entry.name = ev.name
        self.disk_bytes += entry.nbytes

    def _get(self, ev: Get, out: list[Effect]) -> None:
        entry = self._entries.get(ev.key)
        if entry is None:
            out.append(Missing(ev.key, ev.reader))
        elif entry.state in IN_MEMORY:
            assert entry.value is not None
            self._lru.pop(ev.key)
            self._lru[ev.key] = None
            out.append(Deliver(ev.key, ev.reader, entry.value))
        else:
            entry.readers.append(ev.reader)
            if entry.state == DISK:
                self._move(entry, Get)
                out.append(ReadBack(ev.key, entry.serial, entry.name))

    def _hold(self, ev: Hold, out: list[Effect]) -> None:
        entry = self._entries.get(ev.key)
        if entry is not None:
            entry.holders.add(ev.holder)

    def _release(self, ev: Release, out: list[Effect]) -> None:
        entry = self._entries.get(ev.key)
        if entry is None:
            return
        entry.holders.discard(ev.holder)
        if entry.holders:
            return
        del self._entries[ev.key]
        self._lru.pop(ev.key, None)
        self.total_bytes -= entry.nbytes
        if entry.state in IN_MEMORY:
            self.memory_bytes -= entry.nbytes
        if entry.state in ON_DISK:
            self.disk_bytes -= entry.nbytes
        if entry.state == SPILLING:
            self._spilling_bytes -= entry.nbytes  # the file goes when its write is done
        elif entry.state in ON_DISK:
            out.append(DeleteSpill(entry.name))
        out.extend(Missing(ev.key, reader) for reader in entry.readers)
        out.append(Freed(ev.key, entry.nbytes))

    def _current(self, key: str, serial: int) -> _Entry | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry.serial == serial else None

    def _spilled(self, ev: Spilled, out: list[Effect]) -> None:
        entry = self._current(ev.key, ev.serial)
        if entry is None:  # freed while its write was in flight
            out.append(DeleteSpill(spill_name(ev.serial)))
            return
        self._move(entry, Spilled)
        entry.value = None
        self._lru.pop(ev.key)
        self.memory_bytes -= entry.nbytes
        self._spilling_bytes -= entry.nbytes

    def _spill_failed(self, ev: SpillFailed, out: list[Effect]) -> None:
        entry = self._current(ev.key, ev.serial)
        out.append(DeleteSpill(spill_name(ev.serial)))  # whatever part was written
        if entry is None:
            return
        self._move(entry, SpillFailed)
        self._spilling_bytes -= entry.nbytes
        self.disk_bytes -= entry.nbytes
        # The disk holds less than we were told: spill no further than now.
        self.disk_limit = self.disk_bytes
        out.append(DiskFull(ev.key, OutOfStorage(
            self.node, self.directory, self.disk_limit, entry.nbytes, self.disk_bytes)))

    def _loaded(self, ev: Loaded, out: list[Effect]) -> None:
        entry = self._current(ev.key, ev.serial)
        if entry is None or entry.state != LOADING:
            return  # freed while reading: its file is already deleted
        self._move(entry, Loaded)
        entry.value = ev.value
        self._lru[ev.key] = None
        self.memory_bytes += entry.nbytes
        readers, entry.readers = entry.readers, []
        out.extend(Deliver(ev.key, reader, ev.value) for reader in readers)

    # -------------------------------------------------------------- budget
    def _make_room(self, out: list[Effect]) -> None:
        excess = self.memory_bytes - self._spilling_bytes - self.memory_limit
        if excess <= 0:
            return
        for key in list(self._lru):
            if excess <= 0:
                break
            entry = self._entries[key]
            if entry.state == CACHED:
                self._move(entry, EVICT)
                entry.value = None
                del self._lru[key]
                self.memory_bytes -= entry.nbytes
                excess -= entry.nbytes
            elif entry.state == MEMORY and self.disk_bytes + entry.nbytes <= self.disk_limit:
                self._move(entry, EVICT)
                assert entry.value is not None
                self.disk_bytes += entry.nbytes
                self._spilling_bytes += entry.nbytes
                excess -= entry.nbytes
                out.append(WriteSpill(key, entry.serial, entry.name, entry.value))


_HANDLERS = {
    Put: Store._put,
    Adopt: Store._adopt,
    Get: Store._get,
    Hold: Store._hold,
    Release: Store._release,
    Spilled: Store._spilled,
    SpillFailed: Store._spill_failed,
    Loaded: Store._loaded,
}
