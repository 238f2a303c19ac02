"""Events the store takes and effects it gives back: frozen, slotted
dataclasses, as in h11. ``serial`` numbers one stored value, so an I/O result
that comes back after its key was freed (and perhaps stored again) is
recognised as stale."""

from __future__ import annotations

from dataclasses import dataclass

from mesh.errors import OutOfStorage
from mesh.store._values import Holder, Value

# ---------------------------------------------------------------- events in


@dataclass(frozen=True, slots=True)
class Put:
    """Store ``value`` under ``key`` for ``holder``. A key already present
    keeps its first value (values are immutable; a second run of a task may
    differ) and gains the holder."""

    key: str
    value: Value
    holder: Holder


@dataclass(frozen=True, slots=True)
class Adopt:
    """Take ``value``, already complete in spill file ``name`` (a transfer's
    :class:`~mesh.store.FileSink`, a worker's file), as it is: in memory as
    the file's memory map and on disk, so evicting it writes nothing. The
    driver picks ``name``, unique among the files of the directory and not
    ending in ``.spill`` (the store's own names). A key already present gains
    the holder and the file is deleted."""

    key: str
    value: Value
    name: str
    holder: Holder


@dataclass(frozen=True, slots=True)
class Get:
    """Ask for a key's value on behalf of ``reader`` (any token the driver
    uses to route the answer)."""

    key: str
    reader: object


@dataclass(frozen=True, slots=True)
class Hold:
    key: str
    holder: Holder


@dataclass(frozen=True, slots=True)
class Release:
    key: str
    holder: Holder


@dataclass(frozen=True, slots=True)
class Spilled:
    """The driver finished a :class:`WriteSpill`."""

    key: str
    serial: int


@dataclass(frozen=True, slots=True)
class SpillFailed:
    """A :class:`WriteSpill` failed (the disk is full): the value stays in
    memory and the store stops spilling past what the disk holds now."""

    key: str
    serial: int
    reason: str


@dataclass(frozen=True, slots=True)
class Loaded:
    """The driver finished a :class:`ReadBack`."""

    key: str
    serial: int
    value: Value


Event = Put | Adopt | Get | Hold | Release | Spilled | SpillFailed | Loaded

# -------------------------------------------------------------- effects out


@dataclass(frozen=True, slots=True)
class WriteSpill:
    """Write ``value`` to the spill directory as file ``name``; answer with
    :class:`Spilled` or :class:`SpillFailed`."""

    key: str
    serial: int
    name: str
    value: Value


@dataclass(frozen=True, slots=True)
class ReadBack:
    """Read file ``name`` back; answer with :class:`Loaded`."""

    key: str
    serial: int
    name: str


@dataclass(frozen=True, slots=True)
class DeleteSpill:
    """Remove file ``name`` (its value was freed)."""

    name: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """The answer to a :class:`Get`."""

    key: str
    reader: object
    value: Value


@dataclass(frozen=True, slots=True)
class Missing:
    """A :class:`Get` for a key this node does not hold."""

    key: str
    reader: object


@dataclass(frozen=True, slots=True)
class Freed:
    """The last holder released ``key``; its memory and file are gone."""

    key: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class PutRefused:
    """A :class:`Put` that memory and disk together cannot hold. Nothing
    else changed; the driver fails the task or transfer with ``error``."""

    key: str
    error: OutOfStorage


@dataclass(frozen=True, slots=True)
class DiskFull:
    """A spill write failed: ``error`` says where and how much."""

    key: str
    error: OutOfStorage


Effect = WriteSpill | ReadBack | DeleteSpill | Deliver | Missing | Freed | PutRefused | DiskFull
