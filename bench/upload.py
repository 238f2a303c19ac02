"""Values from the client to the mesh: ``Client.scatter`` against Dask's, and
what each 4 MiB chunk of an upload costs.

``python -m bench.upload [--mb 256]`` prints one JSON line::

    {"mb", "mesh_mb_per_s", "dask_mb_per_s", "steps_mb_per_s": {...}}

* ``mesh_mb_per_s``: :func:`bench.data.upload` (``Client.scatter`` of one
  ``--mb`` MiB float64 array to the node that keeps it, on a local mesh of 2
  nodes, serialization and SHA-256 included), the figure ``python -m
  bench.data`` reports as ``transfer.upload_mb_per_s``.
* ``dask_mb_per_s``: Dask's ``Client.scatter`` of the same array to a
  ``LocalCluster(n_workers=2, threads_per_worker=1)`` (null without
  ``distributed``).
* ``steps_mb_per_s``: each step an upload runs per chunk, alone on one
  thread: ``seal`` (AES-256-GCM, client), ``open`` (node), ``sha256`` (each
  side once), ``copy`` (a plain copy, for scale) and ``file_write`` (into a
  new file of a spill directory under ``--dir``, as the node's sink does).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.data import upload
from mesh.config import DEFAULT
from mesh.store._chunks import FileSink
from mesh.store._spill import FileSpillDir
from mesh.wire import Codec

CHUNK = DEFAULT.transfer_chunk


def _rate(n: int, step: Callable[[int], Any]) -> float:
    start = time.perf_counter()
    for i in range(n):
        step(i)
    return round(n * CHUNK / 1e6 / (time.perf_counter() - start), 1)


def steps(n: int, directory: str | None) -> dict[str, float]:
    codec = Codec([b"k" * 32], DEFAULT.max_http_body)
    data = memoryview(np.ones(CHUNK // 8).view(np.uint8))
    frames: list[bytearray] = []
    out = {"seal": _rate(n, lambda i: frames.append(
        codec.seal_chunk(i.to_bytes(8, "big"), i, (data,))))}
    out["open"] = _rate(n, lambda i: codec.open_chunk(frames[i]))
    h = hashlib.sha256()
    out["sha256"] = _rate(n, lambda i: h.update(data))
    out["copy"] = _rate(n, lambda i: bytearray(data))
    with tempfile.TemporaryDirectory(dir=directory) as d:
        sink = FileSink(FileSpillDir(d), "v", [16, n * CHUNK])
        out["file_write"] = _rate(n, lambda i: sink.write(16 + i * CHUNK, (data,)))
        sink.discard()
    return out


def dask_scatter(mb: int) -> float | None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return None
    big = np.ones(mb * (1 << 20) // 8)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        start = time.perf_counter()
        fut = client.scatter(big)
        seconds = time.perf_counter() - start
        assert client.submit(np.size, fut).result() == big.size
    return round(mb * 1.048576 / seconds, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__)
    parser.add_argument("--mb", type=int, default=256, help="MiB scattered")
    parser.add_argument("--chunks", type=int, default=64, help="chunks per step")
    parser.add_argument("--dir", default=None, help="where the file step writes")
    parser.add_argument("--skip-dask", action="store_true")
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    print(json.dumps({
        "mb": args.mb, "mesh_mb_per_s": upload(args.mb),
        "dask_mb_per_s": None if args.skip_dask else dask_scatter(args.mb),
        "steps_mb_per_s": steps(args.chunks, args.dir)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
