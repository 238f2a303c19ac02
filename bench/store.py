"""Data-plane benchmark, in one process: serialization and chunked transfer
of one large numpy array, beside a plain pickle copy measured in the same run.

    python -m bench.store [--mib 256] [--repeat 3]

Prints ONE JSON line. Every figure is MB/s (10**6 bytes per second of wall
clock) of the array's bytes, as ``[worst, best]`` over ``--repeat`` runs (the
machine is shared and noisy):

* ``serialize.mesh_mb_per_s`` -- :func:`mesh.store.dumps` then
  :func:`mesh.store.loads` (out-of-band buffers: no copy of the data);
* ``serialize.mesh_us`` -- the same as microseconds per dumps + loads (it does
  not grow with the array: the MB/s figure only says "no copy");
* ``serialize.pickle_copy_mb_per_s`` -- the peer: ``pickle.dumps`` then
  ``pickle.loads`` (protocol 5, in band: the data is copied both ways);
* ``transfer.mb_per_s`` -- a :class:`Sender` and a :class:`Receiver` with the
  default chunk size and window, chunks handed over directly: cutting views,
  one copy into the receiver's preallocated buffer (transfers name a value by
  an ident and hash nothing);
* ``transfer.digest_mb_per_s`` -- :func:`value_digest`, the SHA-256 a client
  computes for the content key of a value it scatters with ``hash=True``;
* ``transfer.end_to_end_mb_per_s`` -- dumps, transfer and loads: the array as
  the other side gets it;
* ``spill.write_mb_per_s`` / ``spill.read_mb_per_s`` -- a :class:`FileSpillDir`
  in a temporary directory (the read is a memory map, so it measures opening
  the file, not reading the bytes; page cache included in the write).
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mesh.config import Config
from mesh.store import (
    Complete,
    Credit,
    FileSpillDir,
    Receiver,
    Sender,
    Value,
    dumps,
    loads,
    value_digest,
)


def transfer(value: Value, ident: bytes, cfg: Config) -> Value:
    """Move ``value`` from a sender to a receiver in this process."""
    sender = Sender(1, value, chunk_size=cfg.transfer_chunk, window=cfg.transfer_window,
                    ident=ident)
    receiver = Receiver(window=cfg.transfer_window, stall_after=60.0)
    inbox: list[Any] = [sender.offer()]
    while inbox:
        for eff in receiver.handle(inbox.pop(), 0.0):
            if isinstance(eff, Credit):
                sender.handle(eff)
            elif isinstance(eff, Complete):
                return eff.value
        while (chunk := sender.next_chunk()) is not None:
            inbox.insert(0, chunk)
    raise RuntimeError("the transfer did not complete")


def rate(nbytes: int, fn: Callable[[], Any], repeat: int) -> list[float]:
    """``[worst, best]`` MB/s of ``fn`` over ``repeat`` runs."""
    rates = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        rates.append(nbytes / (time.perf_counter() - t) / 1e6)
    return [round(min(rates)), round(max(rates))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--mib", type=int, default=256, help="array size in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    cfg = Config()
    arr = np.arange((args.mib << 20) // 8, dtype=np.float64)
    n = arr.nbytes

    def mesh_serialize() -> None:
        header, buffers = dumps(arr)
        assert np.shares_memory(loads(header, buffers), arr)

    def pickle_copy() -> None:
        pickle.loads(pickle.dumps(arr, protocol=5))

    header, buffers = dumps(arr)
    value = Value.of(header, buffers)
    ident = b"bench-store-ident"

    def one_transfer() -> None:
        transfer(value, ident, cfg)

    def end_to_end() -> None:
        h, b = dumps(arr)
        v = Value.of(h, b)
        got = transfer(v, ident, cfg)
        out = loads(got.header, got.buffers)
        assert out.shape == arr.shape and out[-1] == arr[-1]

    spill = FileSpillDir.temporary(prefix="mesh-bench-")
    try:
        spill_write = rate(n, lambda: spill.write("v", value), args.repeat)
        spill_read = rate(n, lambda: spill.read("v"), args.repeat)
    finally:
        spill.close()

    mesh_rates = rate(n, mesh_serialize, args.repeat)
    print(json.dumps({
        "bench": "store",
        "array_mib": args.mib,
        "chunk_bytes": cfg.transfer_chunk,
        "window": cfg.transfer_window,
        "serialize": {"mesh_mb_per_s": mesh_rates,
                      "mesh_us": [round(n / r / 1e6 * 1e6, 1) for r in reversed(mesh_rates)],
                      "pickle_copy_mb_per_s": rate(n, pickle_copy, args.repeat)},
        "transfer": {"mb_per_s": rate(n, one_transfer, args.repeat),
                     "digest_mb_per_s": rate(n, lambda: value_digest(value), args.repeat),
                     "end_to_end_mb_per_s": rate(n, end_to_end, args.repeat)},
        "spill": {"write_mb_per_s": spill_write, "read_mb_per_s": spill_read},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
