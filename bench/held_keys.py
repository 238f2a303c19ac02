"""Memory of held keys on one node: ``python -m bench.held_keys``.

Drives one exec core in-process (entry node and only holder, ``replicas=1``):
a client session submits ``--keys`` tasks with ``--arg-bytes`` (1 KB) of
arguments, each returns ``--result-bytes`` (1 KB), and the client holds every
key. Prints one JSON line:
``bytes_per_key`` (traced Python allocations of the core per held key) and
what the node keeps per key (``specs_kept``, ``results_kept``,
``tasks_kept``).
"""

from __future__ import annotations

import argparse
import json
import os
import tracemalloc

import msgpack

from mesh.exec import ExecCore
from mesh.metrics import Metrics
from mesh.protocol import payload as P
from mesh.protocol.messages import Submit, encode


def measure(n: int, size: int = 1000, result_size: int | None = None) -> dict[str, object]:
    rsize = size if result_size is None else result_size
    core = ExecCore("a", replicas=1, max_crashes=3, metrics=Metrics(), window=n + 1)
    core.set_view([("a", 1)], 0.0)
    core.open_session(1)
    fn = b"f" * 200
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    msgs = [encode(Submit(f"k{i}", fn, P.ARGS_MSGPACK, msgpack.packb([os.urandom(size)]), [], 0))
            for i in range(n)]
    core.client_messages(1, msgs)
    del msgs  # the frame the node received
    jobs, _ = core.take_jobs(n)
    core.outcomes([(j[0], P.OK_MSGPACK, msgpack.packb(os.urandom(rsize))) for j in jobs])
    del jobs
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return {"keys": n, "arg_bytes": size, "result_bytes": rsize,
            "bytes_per_key": round(held / n), "specs_kept": len(core.table.specs),
            "results_kept": len(core.results), "tasks_kept": len(core.tasks)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.held_keys", description=__doc__)
    p.add_argument("--keys", type=int, default=20_000)
    p.add_argument("--arg-bytes", type=int, default=1000)
    p.add_argument("--result-bytes", type=int, default=1000)
    args = p.parse_args(argv)
    print(json.dumps(measure(args.keys, args.arg_bytes, args.result_bytes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
