"""Defaults of what moves data: the store and its spill, transfers, datasets
and actors, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataDefaults:
    """The data plane, datasets and actors.
    Part of :class:`mesh.config.Config`, which is what code reads."""

    # --- data plane (mesh.store, mesh.exec._dataplane) ------------------------
    memory_limit: int | None = None
    """Bytes of values a node keeps in memory before it spills the least
    recently used to disk (``--memory-limit``). None: ``memory_share`` of the
    machine's RAM split among the nodes started on it
    (:func:`mesh.store.default_memory_limit`), as Dask's ``memory_limit="auto"``
    splits RAM among workers."""

    memory_share: float = 0.5
    """Share of the machine's RAM that the nodes on it give their stores. The
    other half is left to the tasks' own working memory in the workers, the
    OS and the client; Dask starts spilling at 60% of the RAM it splits."""

    spill_reserve: int = 1 << 30
    """Bytes of the spill directory's file system the store leaves free. A
    full disk stops logs, the OS and other programs, not only mesh."""

    transfer_chunk: int = 4 << 20
    """Bytes per chunk of a value moving between nodes. Per-chunk costs (a
    frame, a seal, a message) stay under 1% of copying 4 MiB, and a small
    message waits behind at most one chunk: about 7 ms at 600 MB/s. Well
    under ``max_http_body``."""

    locality_bytes: int = 1 << 20
    """A result of at least this many bytes is located, not moved, until a
    node needs its bytes: a task whose inputs are this large runs where they
    are (:mod:`mesh.exec._locality`), and a client is told it is done
    (``REMOTE``) and fetches it only when ``result()`` needs it, as Dask's
    client gathers from workers. Moving 1 MiB costs about 1-2 ms here (copy,
    seal, digest at 0.6-1 GB/s); handing a task over costs one message round
    trip (well under 1 ms on a LAN), so from here on running it there wins."""

    transfer_window: int = 4
    """Chunks a sender may have in flight before the receiver grants more
    credit: 16 MiB, more than a LAN carries in one round trip at 1 GB/s
    (10 MB at 10 ms), while bounding a receiver's unwritten chunks."""

    transfer_burst: int = 16
    """Small messages the interleaver sends between two chunks when both are
    waiting: they never wait behind more than one chunk, and a flood of them
    still leaves the transfers 1 slot in 17."""

    oob_threshold: int = 64 << 10
    """A result whose out-of-band buffers total at least this many bytes is
    kept as a :class:`mesh.store.Value` (kind ``OK_VALUE``): handed from a
    worker through a file, not the pipe, and moved between nodes as a chunked
    transfer. Below it one inline pickle in a message costs less than a file,
    a map and a transfer's round trips."""

    transfer_stall: float = 10.0
    """Seconds without a chunk before a receiver asks again or takes another source."""

    # --- client uploads (Client.scatter, mesh.exec._uploads) -------------------
    scatter_threshold: int = 1 << 20
    """An argument of ``submit``/``map`` whose pickle is at least this many
    bytes is scattered first (streamed to the mesh in chunks, as
    ``Client.scatter`` does) and passed by reference; smaller ones travel
    inline in the task's spec. At 1 MiB an inline copy in every replica's spec
    costs more than one value in the store and a transfer's round trips, and
    Dask warns of graph arguments from about the same size."""

    upload_max_values: int = 64
    """Values one client session may be uploading at once; an offer past it
    is refused. Each costs a sink (a file in the spill directory) and a
    receiver: a client cannot make a node hold an unbounded number of them."""

    data_partition_bytes: int = 4 << 20
    """Largest pickled dataset partition: half of max_http_body (results travel inline)."""
