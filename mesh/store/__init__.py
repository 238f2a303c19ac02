"""A node's values: the store (memory budget, spill, references), zero-copy
serialization, and chunked transfers. Sans-IO cores with thin drivers; see
``docs/dataplane.md``. Not wired into the node yet."""

from mesh.errors import OutOfStorage
from mesh.store._core import CACHED, DISK, LOADING, MEMORY, SPILLING, Store, StoreStats
from mesh.store._events import (
    DeleteSpill,
    Deliver,
    DiskFull,
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
from mesh.store._local import LocalStore
from mesh.store._serialize import SerializationError, dumps, loads
from mesh.store._size import default_memory_limit, machine_memory, parse_size, spill_limit
from mesh.store._spill import FileSpillDir, MemorySpillDir, SpillDir
from mesh.store._values import CLIENT, REPLICA, TASK, Holder, Value

__all__ = [
    "CACHED", "CLIENT", "DISK", "LOADING", "MEMORY", "REPLICA", "SPILLING", "TASK",
    "DeleteSpill", "Deliver", "DiskFull", "FileSpillDir", "Freed", "Get", "Hold", "Holder",
    "Loaded", "LocalStore", "MemorySpillDir", "Missing", "OutOfStorage", "Put", "PutRefused",
    "ReadBack", "Release", "SerializationError", "SpillDir", "SpillFailed", "Spilled", "Store",
    "StoreStats", "Value", "WriteSpill", "default_memory_limit", "dumps", "loads",
    "machine_memory", "parse_size", "spill_limit",
]
