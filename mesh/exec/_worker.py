"""A worker process: ``python -m mesh.exec._worker``.

Reads batches of jobs from stdin and writes one batch of results per batch to
the protocol pipe, each as a 4-byte big-endian length and a msgpack body. The
node authenticated every job (cluster codec) before it wrote it here, so this
is the only place that unpickles task code.

Job: ``[tid, function bytes, args kind, args payload, deps]`` where ``deps``
is ``{key: [kind, payload]}`` or nil. Reply: ``[elapsed seconds,
[[tid, kind, payload], ...]]`` in job order.

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

from mesh.protocol import payload as P

_HEADER = struct.Struct(">I")
_FN_CACHE_SIZE = 256


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)  # a buffered reader returns n bytes unless at end of input
    if len(data) < n:
        return None
    return data


class _Runner:
    """Runs jobs; caches unpickled functions by their pickled bytes."""

    def __init__(self) -> None:
        self._fns: OrderedDict[bytes, Callable[..., Any]] = OrderedDict()

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
                    values[key] = P.loads_value(kind, payload)
            a, kw = P.loads_args(akind, args, values)
            kind, payload = P.dumps_value(fn(*a, **kw))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # the task's failure (even SystemExit) is its result
            kind, payload = P.dumps_error(exc)
        return [tid, kind, payload]


def main() -> None:
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # user prints go to stderr
    stdin = os.fdopen(0, "rb")
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
