"""A worker process: ``python -m mesh.exec._worker [SPILL_DIR PREFIX OOB_THRESHOLD]``.

Reads batches of jobs from stdin and writes one batch of results per batch to
the protocol pipe, each as a 4-byte big-endian length and a msgpack body. The
node authenticated every job (cluster codec) before it wrote it here, so this
is the only place that unpickles task code.

Job: ``[tid, function bytes, args kind, args payload, deps]`` where ``deps``
is ``{key: [kind, payload]}`` or nil; an ``OK_VALUE`` dependency's payload is
the name of a file in ``SPILL_DIR`` (mapped, not copied) or, without a spill
directory, ``[header, *buffers]`` (see :func:`mesh.exec._handoff.load_dep`).
Reply: ``[elapsed seconds, [[tid, kind, payload], ...]]`` in job order. With a
spill directory, a result whose out-of-band buffers total at least
``OOB_THRESHOLD`` bytes is written to ``SPILL_DIR/PREFIX<n>`` (``n`` counts up
from 0) and replied as ``[tid, OK_VALUE, [name, segment sizes]]``.

The user's prints go to stderr (fd 1 is redirected), so they cannot corrupt
the protocol stream. The process exits on end of input.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, BinaryIO

import cloudpickle
import msgpack

from mesh.exec._handoff import encode_result, load_dep, write_result
from mesh.protocol import payload as P
from mesh.store import FileSpillDir, SpillDir, Value

_HEADER = struct.Struct(">I")
_FN_CACHE_SIZE = 256


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)  # a buffered reader returns n bytes unless at end of input
    if len(data) < n:
        return None
    return data


class _Runner:
    """Runs jobs; caches unpickled functions by their pickled bytes. With a
    ``spill`` directory, large results go there as files named ``prefix<n>``."""

    def __init__(self, spill: SpillDir | None = None, prefix: str = "",
                 threshold: int | None = None) -> None:
        self._fns: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()
        self._spill = spill
        self._prefix = prefix
        self._threshold = threshold if spill is not None else None
        self._files = 0

    def function(self, blob: bytes) -> Callable[..., Any]:
        fn = self._fns.get(blob)
        if fn is None:
            fn = cloudpickle.loads(blob)
            self._fns[blob] = fn
            if len(self._fns) > _FN_CACHE_SIZE:
                self._fns.popitem(last=False)
        return fn

    def run(self, job: list) -> list:
        tid, blob, akind, args, deps = job
        try:
            fn = self.function(blob)
            values = {}
            if deps:
                for key, (kind, payload) in deps.items():
                    values[key] = load_dep(kind, payload, self._spill)
            a, kw = P.loads_args(akind, args, values)
            result = fn(*a, **kw)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the task's failure (even SystemExit) is its result
            return [tid, *P.dumps_error(exc)]
        del values, a, kw  # inputs (maps of spill files) are not kept past the task
        encoded = encode_result(tid, result, self._threshold)
        if isinstance(encoded, Value):
            assert self._spill is not None
            name = f"{self._prefix}{self._files}"
            self._files += 1
            encoded = write_result(tid, self._spill, name, encoded)
        return [tid, *encoded]


def main() -> None:
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # user prints go to stderr
    stdin = os.fdopen(0, "rb")
    if len(sys.argv) == 4:
        runner = _Runner(FileSpillDir(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
    else:
        runner = _Runner()
    packer = msgpack.Packer(use_bin_type=True)
    while True:
        head = _read_exact(stdin, 4)
        if head is None:
            return
        (size,) = _HEADER.unpack(head)
        body = _read_exact(stdin, size)
        if body is None:
            return
        jobs = msgpack.unpackb(body, raw=False)
        start = time.perf_counter()
        results = [runner.run(job) for job in jobs]
        reply = packer.pack([time.perf_counter() - start, results])
        proto_out.write(_HEADER.pack(len(reply)) + reply)
        proto_out.flush()


if __name__ == "__main__":
    sys.exit(main())
