"""The seed's word count and a heavy shuffle: mesh datasets against a
process pool, dask.bag and one process.

``python -m bench.wordcount [--mb 100] [--skip-shuffle]`` prints two JSON
lines (``--skip-shuffle``: line 1 only).

Line 1, word count over ``--mb`` MB of text whose words follow a Zipf law
(vocabulary 100,000, seeded; generated once into ``--cache``):

* ``mesh_mb_per_s``: a local mesh of 2 nodes with 1 worker each,
  ``read_text(...).flat_map(str.split).map(lambda w: (w, 1))
  .reduce_by_key(operator.add).collect()``;
* ``pool_mb_per_s``: ``multiprocessing.Pool(2)`` over byte ranges, merging
  ``collections.Counter`` s;
* ``dask_bag_mb_per_s``: ``dask.bag.read_text(...).str.split().flatten()
  .frequencies()`` on ``LocalCluster(n_workers=2, threads_per_worker=1)``;
* ``single_mb_per_s``: one process, ``collections.Counter``;
* ``correct``: all four counts are equal;
* ``mesh_cpu_s``, ``pool_cpu_s``, ``dask_bag_cpu_s``, ``single_cpu_s``: CPU
  seconds each run took in every process it used (this one and its
  descendants), the cost to compare on a machine shared with other jobs.

Line 2, a heavy shuffle: ``--pairs`` (10,000,000) ``(key, 1)`` pairs over
``--keys`` (1,000,000) distinct keys, generated on the workers in ``--maps``
partitions, reduced by key into 16 partitions: ``shuffle_mesh_s``
(``reduce_by_key``) and ``shuffle_dask_s`` (``dask.bag.foldby``), and
``shuffle_correct`` (equal numbers of distinct keys and of pairs), and
``shuffle_mesh_cpu_s``, ``shuffle_dask_cpu_s``.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import multiprocessing
import operator
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.dask import local_mesh
from mesh.data._text import read_block

VOCABULARY = 100_000
SEED = 13
BLOCK = 8 * 1024 * 1024
"""Bytes per block for the pool, dask.bag and the mesh: 2 workers get
several blocks each, and a block's combined counts (about 1 MiB pickled)
stay under ``Config.data_partition_bytes``."""


def corpus(cache: Path, mb: int) -> Path:
    """``mb`` MB of Zipf-distributed words, made once per size and seed."""
    import numpy as np

    path = cache / f"zipf-{mb}mb-v{VOCABULARY}-s{SEED}.txt"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    words = np.array([f"w{r:x}" for r in range(VOCABULARY)], dtype=object)
    p = 1.0 / np.arange(1, VOCABULARY + 1)
    p /= p.sum()
    tmp = path.with_suffix(".tmp")
    written, target = 0, mb * 1_000_000
    with open(tmp, "w") as f:
        while written < target:
            ws = words[rng.choice(VOCABULARY, size=120_000, p=p)]
            lines = [" ".join(ws[i:i + 12]) for i in range(0, len(ws), 12)]
            text = "\n".join(lines) + "\n"
            f.write(text)
            written += len(text)
    os.replace(tmp, path)
    return path


def ranges(path: Path) -> list[tuple[int, int]]:
    size = path.stat().st_size
    return [(s, min(s + BLOCK, size)) for s in range(0, size, BLOCK)]


def count_range(args: tuple[str, int, int]) -> collections.Counter:
    path, start, end = args
    return collections.Counter(" ".join(read_block(path, start, end, "utf-8")).split())


def single(path: Path) -> collections.Counter:
    total: collections.Counter = collections.Counter()
    for s, e in ranges(path):
        total.update(count_range((str(path), s, e)))
    return total


def pool(path: Path) -> collections.Counter:
    total: collections.Counter = collections.Counter()
    with multiprocessing.get_context("spawn").Pool(2) as p:
        for c in p.imap_unordered(count_range, [(str(path), s, e) for s, e in ranges(path)]):
            total.update(c)
    return total


def mesh_count(client: Any, path: Path) -> dict:
    counts = (client.read_text(str(path), blocksize=BLOCK)
              .flat_map(str.split).map(lambda w: (w, 1)).reduce_by_key(operator.add))
    return dict(counts.collect())


def dask_count(dask_client: Any, path: Path) -> dict:
    import dask.bag as db

    bag = db.read_text(str(path), blocksize=BLOCK).str.split().flatten().frequencies()
    return dict(bag.compute(scheduler=dask_client.get))


def pairs(i: int, per: int, keys: int) -> list[tuple[int, int]]:
    rng = random.Random(i)
    return [(rng.randrange(keys), 1) for _ in range(per)]


def key_stats(items: Any) -> list[tuple[int, int]]:
    """One partition of the shuffle's output as (distinct keys, pairs)."""
    n = total = 0
    for _, v in items:
        n += 1
        total += v
    return [(n, total)]


def shuffle_mesh(client: Any, args: argparse.Namespace, per: int) -> list[tuple[int, int]]:
    shuffled = (client.from_sequence(range(args.maps), npartitions=args.maps)
                .flat_map(lambda i: pairs(i, per, args.keys))
                .reduce_by_key(operator.add, npartitions=16))
    return shuffled.map_partitions(key_stats).collect()


def shuffle_dask(dc: Any, args: argparse.Namespace, per: int) -> list[tuple[int, int]]:
    import dask.bag as db

    bag = db.from_sequence(range(args.maps), npartitions=args.maps).map(
        pairs, per, args.keys).flatten()
    return bag.foldby(operator.itemgetter(0), lambda acc, kv: acc + kv[1], 0, operator.add,
                      0).compute(scheduler=dc.get)


def cpu_seconds() -> float:
    """CPU seconds used so far by this process, its reaped children and every
    live descendant (mesh nodes and their workers, dask's workers): on a
    shared machine, what a run cost whatever else was running."""
    import resource

    import psutil

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + kids.ru_utime + kids.ru_stime
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


CPU: dict[str, float] = {}
"""CPU seconds of each timed run, by name (filled by :func:`timed`)."""


def timed(run: Any, name: str = "") -> tuple[float, Any]:
    cpu = cpu_seconds()
    start = time.perf_counter()
    out = run()
    elapsed = time.perf_counter() - start
    CPU[name] = cpu_seconds() - cpu
    return elapsed, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.wordcount", description=__doc__)
    parser.add_argument("--mb", type=int, default=100, help="MB of text (issue: 100)")
    parser.add_argument("--pairs", type=int, default=10_000_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--maps", type=int, default=64,
                        help="map partitions of the shuffle (each map's combined output "
                             "must stay under 4 MiB)")
    parser.add_argument("--skip-shuffle", action="store_true",
                        help="print only the word count line")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "mesh-bench-cache")
    args = parser.parse_args(argv)
    from distributed import Client as DaskClient
    from distributed import LocalCluster

    from mesh import Client

    path = corpus(args.cache, args.mb)
    mb = path.stat().st_size / 1e6
    per = args.pairs // args.maps
    t_single, ref = timed(lambda: single(path), "single")
    t_pool, by_pool = timed(lambda: pool(path), "pool")
    with local_mesh(2) as addrs, Client(addrs) as client:
        client.from_sequence(range(4), npartitions=2).sum()  # workers import mesh.data
        t_mesh, by_mesh = timed(lambda: mesh_count(client, path), "mesh")
        if not args.skip_shuffle:
            t_shuffle_mesh, mesh_shuffle = timed(lambda: shuffle_mesh(client, args, per),
                                                 "shuffle_mesh")
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, DaskClient(cluster) as dc:
        import dask.bag as db

        db.from_sequence([1, 2], npartitions=2).sum().compute(scheduler=dc.get)
        t_dask, by_dask = timed(lambda: dask_count(dc, path), "dask_bag")
        if not args.skip_shuffle:
            t_shuffle_dask, dask_shuffle = timed(lambda: shuffle_dask(dc, args, per),
                                                 "shuffle_dask")
    print(json.dumps({
        "mb": round(mb, 1),
        "mesh_mb_per_s": round(mb / t_mesh, 1),
        "pool_mb_per_s": round(mb / t_pool, 1),
        "dask_bag_mb_per_s": round(mb / t_dask, 1),
        "single_mb_per_s": round(mb / t_single, 1),
        **{f"{k}_cpu_s": round(CPU[k], 1) for k in ("mesh", "pool", "dask_bag", "single")},
        "correct": dict(by_pool) == dict(ref) == by_mesh == by_dask,
        "words": sum(ref.values()),
        "distinct": len(ref),
    }))
    if args.skip_shuffle:
        return 0
    mesh_keys = sum(n for n, _ in mesh_shuffle)
    mesh_pairs = sum(t for _, t in mesh_shuffle)
    print(json.dumps({
        "pairs": per * args.maps, "keys": args.keys, "maps": args.maps, "partitions": 16,
        "shuffle_mesh_s": round(t_shuffle_mesh, 2),
        "shuffle_dask_s": round(t_shuffle_dask, 2),
        "shuffle_mesh_cpu_s": round(CPU["shuffle_mesh"], 1),
        "shuffle_dask_cpu_s": round(CPU["shuffle_dask"], 1),
        "shuffle_correct": (mesh_keys == len(dask_shuffle) and mesh_pairs == per * args.maps
                            and sum(v for _, v in dask_shuffle) == per * args.maps),
        "distinct_keys": len(dask_shuffle),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
