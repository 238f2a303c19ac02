"""The plan: a dataset's partitions as fused tasks.

A partition that has not run yet is a :class:`Part`: a source (a function and
its arguments, which may be futures) and the narrow operations (``map``,
``flat_map``, ``filter``, ``map_partitions``) to apply to it. Narrow
transformations only extend ``ops``, so a chain of them runs as one task per
partition and makes no intermediate partitions. :func:`submit_parts` turns
parts into mesh tasks; the task runs :func:`run_part`, which applies the ops
lazily and ends with a ``tail``: ``list`` for a partition kept on the mesh, a
shuffle's split, or an action's per-partition summary (``len``, ``sum``,
``nlargest``...), so an action moves only the summaries to the client.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_PARTITION_BYTES", "Part", "Plan", "identity", "run_part"]

MAX_PARTITION_BYTES = 4 * 1024 * 1024
"""A task's result (and so a materialized partition or a shuffle map task's
output) travels inline in one frame until the data plane is wired in: at most
half of ``Config.max_http_body``."""

Op = tuple[str, Callable[..., Any]]


@dataclass(frozen=True, slots=True)
class Part:
    """One partition, not yet run: ``source(*args)`` then ``ops``."""

    source: Callable[..., Iterable[Any]]
    args: tuple
    ops: tuple[Op, ...] = ()

    def then(self, op: Op) -> Part:
        return Part(self.source, self.args, (*self.ops, op))


def apply_ops(items: Iterable[Any], ops: tuple[Op, ...]) -> Iterator[Any]:
    it: Iterable[Any] = items
    for kind, fn in ops:
        if kind == "map":
            it = map(fn, it)
        elif kind == "flat_map":
            it = itertools.chain.from_iterable(map(fn, it))
        elif kind == "filter":
            it = filter(fn, it)
        elif kind == "map_partitions":
            it = fn(iter(it))
        else:  # pragma: no cover - the Dataset builds only the kinds above
            raise ValueError(f"unknown operation {kind!r}")
    return iter(it)


def run_part(source: Callable[..., Iterable[Any]], args: tuple, ops: tuple[Op, ...],
             tail: Callable[..., Any], tail_args: tuple, label: str) -> Any:
    """The task of one partition (runs on a worker): ``tail(items,
    *tail_args)``. An exception raised by the user's function propagates
    with a note naming the partition."""
    try:
        return tail(apply_ops(source(*args), ops), *tail_args)
    except Exception as exc:
        exc.add_note(f"mesh.data: raised in {label}")
        raise


def identity(value: Any) -> Any:
    """The source of a partition that is already a task result."""
    return value


def new_token() -> str:
    """A fresh suffix for an action's task keys: an action never resubmits
    keys an earlier action released (keys are ``data-<stage>-<i>-<token>``)."""
    return uuid.uuid4().hex[:16]


class Plan:
    """One action's planning: the client, the keys' token, each dataset's
    parts worked out once (a dataset used twice in a graph, as in a
    self-join, runs once) and a counter that names stages."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token = new_token()
        self._parts: dict[int, list[Part]] = {}
        self._keep: list[Any] = []  # the datasets memoised by id stay alive
        self._stages = 0

    def parts(self, ds: Any) -> list[Part]:
        got = self._parts.get(id(ds))
        if got is None:
            got = self._parts[id(ds)] = ds._planner(self)
            self._keep.append(ds)
        return got

    def key(self, stage: str) -> str:
        """A fresh key for one task of this plan."""
        self._stages += 1
        return f"data-{stage}{self._stages}-{self.token}"

    def submit(self, parts: list[Part], tail: Callable[..., Any], stage: str, name: str,
               tail_args: Callable[[int], tuple] | None = None) -> list[Any]:
        """One task per part; their futures, in partition order.
        ``tail_args(i)``: extra arguments of partition i's tail (futures
        among them are passed as their results)."""
        self._stages += 1
        n = len(parts)
        return [self.client.submit(
                    run_part, p.source, p.args, p.ops, tail,
                    tail_args(i) if tail_args else (), f"partition {i} of {n} of {name}",
                    key=f"data-{stage}{self._stages}-{i}-{self.token}")
                for i, p in enumerate(parts)]
