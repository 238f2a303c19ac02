"""Shuffles as task graphs: map tasks split, reduce tasks merge.

A shuffle of a dataset with m partitions into n is m map tasks and n reduce
partitions. Map task i runs parent partition i (its narrow operations fused
in) and ends by splitting its items by target partition into n blocks, each
pickled on its own; with a combiner (``reduce_by_key``, ``group_by_key``,
``join``) it combines values by key before splitting, so each key leaves a
map task once. Reduce partition j is a :class:`~mesh.data._plan.Part` whose
arguments are the map tasks' futures: the task layer fetches them, and the
reduce task unpickles only block j of each. Narrow operations after the
shuffle, and the action's tail, fuse into the reduce task.

Until the data plane is wired in, this has two costs to know: a map task's
whole output (all n blocks) is one task result, so it must stay under
``MAX_PARTITION_BYTES`` (use more map partitions); and each reduce task is
handed every map output, not only its own block.

Keys go to partitions by a hash that is the same in every process:
CRC-32 of a canonical encoding (:func:`partition_of`), never ``hash()``,
which Python salts per process for ``str`` and ``bytes``.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import pickle
import random
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mesh.data._actions import identity as _identity
from mesh.data._actions import pair
from mesh.data._fuse import count_items, counting
from mesh.data._plan import Part, Plan

__all__ = ["Combiner", "partition_of", "plan_combine", "plan_repartition", "plan_sort"]

_MISSING = object()
_ZEROS = itertools.repeat(0)
_SAMPLE_PER_PARTITION = 20
"""Keys each partition contributes to ``sort_by``'s range boundaries."""


def encode_key(key: Any) -> bytes:
    """A canonical byte string for a key: equal keys (``1 == 1.0 == True``,
    equal tuples, equal frozensets) encode equally in any process."""
    if isinstance(key, str):
        return b"s" + key.encode("utf-8", "surrogatepass")
    if isinstance(key, int):
        return b"i%d" % key
    if isinstance(key, float):
        return b"i%d" % key if key.is_integer() else b"f" + repr(key).encode()
    if isinstance(key, bytes):
        return b"b" + key
    if key is None:
        return b"n"
    if isinstance(key, tuple):
        parts = [encode_key(k) for k in key]
        return b"t" + b"".join(b"%d:" % len(p) + p for p in parts)
    if isinstance(key, frozenset):
        parts = sorted(encode_key(k) for k in key)
        return b"z" + b"".join(b"%d:" % len(p) + p for p in parts)
    return b"p" + pickle.dumps(key, protocol=4)


_STR_SEED = zlib.crc32(b"s")
"""CRC-32 of the tag of a ``str`` key: ``crc32(text, _STR_SEED)`` is
``crc32(b"s" + text)`` without the copy."""


def partition_of(key: Any, n: int) -> int:
    """The partition of ``key`` among ``n``: the same in every process."""
    if n <= 1:
        return 0
    if type(key) is str:
        return zlib.crc32(key.encode("utf-8", "surrogatepass"), _STR_SEED) % n
    return zlib.crc32(encode_key(key)) % n


def _bad_item(item: Any, where: str) -> TypeError:
    """Why ``item`` cannot be combined: not a pair, or an unhashable key."""
    k, _ = pair(item, where)
    return TypeError(f"{where}: a key of type {type(k).__name__} is unhashable "
                     f"({k!r:.80}); keys must be hashable (a tuple, not a list)")


class Combiner:
    """How values of one key combine (Spark's ``combineByKey``): ``create``
    a combined value from a value, ``merge_value`` a value into one,
    ``merge_combiners`` two of them. ``where`` names the transformation in
    errors."""

    __slots__ = ("create", "merge_combiners", "merge_value", "where")

    def __init__(self, create: Callable[[Any], Any], merge_value: Callable[[Any, Any], Any],
                 merge_combiners: Callable[[Any, Any], Any], where: str) -> None:
        self.create, self.merge_value = create, merge_value
        self.merge_combiners, self.where = merge_combiners, where

    def __reduce__(self) -> Any:
        return (Combiner, (self.create, self.merge_value, self.merge_combiners, self.where))


def _pickle_blocks(blocks: list[list[Any]]) -> list[bytes]:
    return [pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL) for b in blocks]


def combine(items: Iterable[Any], c: Combiner) -> dict[Any, Any]:
    """Values combined by key, keys in order of first appearance. The hot
    loop calls nothing per item but the user's function; ``create`` when it
    is the identity and ``merge_value`` when it is ``operator.add`` (the word
    count's ``reduce_by_key(operator.add)``) are inlined."""
    acc: dict[Any, Any] = {}
    get, create, merge = acc.get, c.create, c.merge_value
    item: Any = _MISSING
    try:
        if create is _identity and merge is operator.add:
            for item in items:
                k, v = item
                old = get(k, _MISSING)
                acc[k] = v if old is _MISSING else old + v
        elif create is _identity:
            for item in items:
                k, v = item
                old = get(k, _MISSING)
                acc[k] = v if old is _MISSING else merge(old, v)
        else:
            for item in items:
                k, v = item
                old = get(k, _MISSING)
                acc[k] = create(v) if old is _MISSING else merge(old, v)
    except (TypeError, ValueError):
        if item is _MISSING or _good_pair(item):
            raise  # the user's function raised it
        raise _bad_item(item, c.where) from None
    return acc


def _good_pair(item: Any) -> bool:
    try:
        k, _v = item
        hash(k)
    except (TypeError, ValueError):
        return False
    return True


def split_combined(items: Iterable[Any], c: Combiner, n: int, count: int | None = None
                   ) -> list[bytes]:
    """Map side of a combining shuffle: combine by key, then split by key.
    With ``count`` (:func:`mesh.data._fuse.counting` proved it equal), the
    items are ``str`` keys whose pairs ``(item, count)`` combine by ``+``.
    A block is ``(keys, values, ints)``: two lists (cheaper to pickle than a
    list of pairs), and whether every value is known to be an exact ``int``
    (a counted block), which lets the reduce side merge it in C."""
    acc = combine(items, c) if count is None else count_items(items, count)
    ints = count is not None
    if n == 1:
        return _pickle_blocks([(list(acc), list(acc.values()), ints)])
    keys: list[list[Any]] = [[] for _ in range(n)]
    values: list[list[Any]] = [[] for _ in range(n)]
    crc, seed = zlib.crc32, _STR_SEED
    for k, v in acc.items():
        j = crc(k.encode("utf-8", "surrogatepass"), seed) % n if type(k) is str else (
            partition_of(k, n))
        keys[j].append(k)
        values[j].append(v)
    return _pickle_blocks([(keys[j], values[j], ints) for j in range(n)])


def merge_combined(c: Combiner, j: int, outputs: list[list[bytes]]) -> Iterator[Any]:
    """Reduce side: block ``j`` of every map output, merged by key in map
    order. A block of exact ``int`` values merged by ``operator.add`` goes
    through C loops: ``acc.get(k, 0) + v`` is ``old + v`` for a key already
    there and ``v`` itself (an ``int``) for a new one, as the general loop
    gives, keys in the same order."""
    acc: dict[Any, Any] = {}
    get, merge = acc.get, c.merge_combiners
    for out in outputs:
        keys, values, ints = pickle.loads(out[j])
        if not acc:
            acc.update(zip(keys, values, strict=True))  # the first block's keys are distinct
        elif merge is operator.add and ints:
            acc.update(zip(keys, map(operator.add, map(get, keys, _ZEROS), values), strict=True))
        elif merge is operator.add:
            for k, v in zip(keys, values, strict=True):
                old = get(k, _MISSING)
                acc[k] = v if old is _MISSING else old + v
        else:
            for k, v in zip(keys, values, strict=True):
                old = get(k, _MISSING)
                acc[k] = v if old is _MISSING else merge(old, v)
    return iter(acc.items())


def plan_combine(plan: Plan, parent: Any, c: Combiner, n: int, name: str) -> list[Part]:
    fused = [counting(p, c.create, c.merge_value) for p in plan.parts(parent)]
    maps = plan.submit([p for p, _ in fused], split_combined, "map", name,
                       tail_args=lambda i: (c, n, fused[i][1]))
    return [Part(merge_combined, (c, j, maps)) for j in range(n)]


def split_round_robin(items: Iterable[Any], n: int, offset: int) -> list[bytes]:
    blocks: list[list[Any]] = [[] for _ in range(n)]
    for i, item in enumerate(items, offset):
        blocks[i % n].append(item)
    return _pickle_blocks(blocks)


def concat_blocks(j: int, outputs: list[list[bytes]]) -> Iterator[Any]:
    for out in outputs:
        yield from pickle.loads(out[j])


def plan_repartition(plan: Plan, parent: Any, n: int, name: str) -> list[Part]:
    maps = plan.submit(plan.parts(parent), split_round_robin, "map", name,
                       tail_args=lambda i: (n, i))
    return [Part(concat_blocks, (j, maps)) for j in range(n)]


# ------------------------------------------------------------------ sort_by


def _key_of(key: Callable[[Any], Any] | None, item: Any) -> Any:
    return item if key is None else key(item)


def sample_keys(items: Iterable[Any], key: Callable[[Any], Any] | None, size: int,
                seed: int) -> list[Any]:
    """A reservoir sample of ``size`` keys, seeded by the partition index."""
    rng = random.Random(seed)
    out: list[Any] = []
    for i, item in enumerate(items):
        if i < size:
            out.append(_key_of(key, item))
        else:
            r = rng.randrange(i + 1)
            if r < size:
                out[r] = _key_of(key, item)
    return out


def boundaries(samples: list[list[Any]], n: int) -> list[Any]:
    """``n - 1`` cut keys from the samples: range partition j holds keys
    between cut ``j - 1`` and cut ``j``."""
    keys = sorted(k for s in samples for k in s)
    if not keys:
        return []
    return [keys[(j + 1) * len(keys) // n] for j in range(n - 1)]


def split_range(items: Iterable[Any], key: Callable[[Any], Any] | None, cuts: list[Any],
                n: int, reverse: bool, i: int, m: int) -> list[bytes]:
    """Map task ``i`` of ``m`` of a sort: each item to its range. A key equal
    to cuts ``lo..hi-1`` (a hot key the sample saw more than once) may go to
    any range ``lo..hi``: map task i sends its share to range ``lo + i *
    (hi - lo + 1) // m``, so a hot key spreads over those ranges, and in map
    order, which keeps equal keys in their input order (a stable sort)."""
    blocks: list[list[Any]] = [[] for _ in range(n)]
    right, left = bisect.bisect_right, bisect.bisect_left
    for item in items:
        k = _key_of(key, item)
        j = right(cuts, k)
        if j and not cuts[j - 1] < k:  # k equals cuts[j - 1]
            lo = left(cuts, k)
            share = i * (j - lo + 1) // m
            j = j - share if reverse else lo + share
        blocks[n - 1 - j if reverse else j].append(item)
    return _pickle_blocks(blocks)


def sorted_block(j: int, outputs: list[list[bytes]], key: Callable[[Any], Any] | None,
                 reverse: bool) -> list[Any]:
    return sorted(concat_blocks(j, outputs), key=key, reverse=reverse)


def plan_sort(plan: Plan, parent: Any, key: Callable[[Any], Any] | None, reverse: bool,
              n: int, name: str) -> list[Part]:
    """Sample each partition, cut ``n`` ranges, split by range, sort each
    range: partitions come out in order. The parent runs twice (sample,
    then split), as in Spark without a cache; ``persist()`` it first when
    it is costly."""
    parts = plan.parts(parent)
    samples = plan.submit(parts, sample_keys, "sample", name,
                          tail_args=lambda i: (key, _SAMPLE_PER_PARTITION, i))
    cuts = plan.submit_one(boundaries, samples, n, stage="cuts")
    maps = plan.submit(parts, split_range, "map", name,
                       tail_args=lambda i: (key, cuts, n, reverse, i, len(parts)))
    return [Part(sorted_block, (j, maps, key, reverse)) for j in range(n)]
