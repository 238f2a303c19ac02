"""A node's values: the store (memory budget, spill, references), zero-copy
serialization, and chunked transfers. Sans-IO cores with thin drivers; see
``docs/dataplane.md``. A node owns one store (``mesh.store._driver``)."""

from mesh.errors import OutOfStorage
from mesh.store._chunks import FileSink, MemorySink, Sink, value_digest
from mesh.store._core import CACHED, DISK, LOADING, MEMORY, SPILLING, Store, StoreStats
from mesh.store._events import (
    Adopt,
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
from mesh.store._interleave import Interleaver
from mesh.store._local import LocalStore
from mesh.store._serialize import SerializationError, dumps, loads, pickled_stream, wrap_pickled
from mesh.store._size import default_memory_limit, machine_memory, parse_size, spill_limit
from mesh.store._spill import FileSpillDir, MemorySpillDir, SpillDir
from mesh.store._transfer import (
    Cancel,
    Chunk,
    Complete,
    Corrupt,
    Credit,
    Offer,
    Receiver,
    Sender,
    Stalled,
)
from mesh.store._values import CLIENT, REPLICA, TASK, Holder, Value, payload_size

__all__ = [
    "CACHED", "CLIENT", "DISK", "LOADING", "MEMORY", "REPLICA", "SPILLING", "TASK", "Adopt",
    "Cancel", "Chunk", "Complete", "Corrupt", "Credit", "DeleteSpill", "Deliver", "DiskFull",
    "FileSink", "FileSpillDir", "Freed", "Get", "Hold", "Holder", "Interleaver", "Loaded",
    "LocalStore", "MemorySink", "MemorySpillDir", "Missing", "Offer", "OutOfStorage", "Put",
    "PutRefused", "ReadBack", "Receiver", "Release", "Sender", "SerializationError", "Sink",
    "SpillDir", "SpillFailed", "Spilled", "Stalled", "Store", "StoreStats", "Value",
    "WriteSpill", "default_memory_limit", "dumps", "loads", "machine_memory", "parse_size",
    "payload_size", "pickled_stream", "spill_limit", "value_digest", "wrap_pickled",
]
