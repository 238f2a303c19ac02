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
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mesh.config import DEFAULT

__all__ = ["MAX_PARTITION_BYTES", "Part", "Plan", "identity", "run_part"]

MAX_PARTITION_BYTES = DEFAULT.data_partition_bytes
"""The largest pickled partition (see ``Config.data_partition_bytes``)."""

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


_ACTIONS: weakref.WeakKeyDictionary[Any, Iterator[int]] = weakref.WeakKeyDictionary()


def new_token(client: Any) -> str:
    """A fresh suffix for an action's task keys: the client's id and how many
    actions it planned, so an action never resubmits keys an earlier one
    released (keys are ``data-<stage>-<i>-<token>``), two clients never
    share keys, and a simulated client's keys follow from its seed."""
    counter = _ACTIONS.get(client)
    if counter is None:
        counter = _ACTIONS[client] = itertools.count()
    return f"{client._core.client_id}-{next(counter)}"


class Plan:
    """One action's planning: the client, the keys' token, each dataset's
    parts worked out once (a dataset used twice in a graph, as in a
    self-join, runs once), a counter that names stages, and every future the
    action submitted. The action holds its plan until its results are in:
    a mesh keeps (and recomputes when a node dies) only the keys a client
    holds, so a shuffle's map outputs, a sort's samples and cuts must stay
    held while the tasks that read them run."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token = new_token(client)
        self._parts: dict[int, list[Part]] = {}
        self._keep: list[Any] = []  # the datasets memoised by id stay alive
        self._stages = 0
        self.futures: list[Any] = []

    def parts(self, ds: Any) -> list[Part]:
        got = self._parts.get(id(ds))
        if got is None:
            got = self._parts[id(ds)] = ds._planner(self)
            self._keep.append(ds)
        return got

    def submit_one(self, fn: Callable[..., Any], *args: Any, stage: str) -> Any:
        """A task of this plan that is not a partition (a sort's cuts)."""
        self._stages += 1
        fut = self.client.submit(fn, *args, key=f"data-{stage}{self._stages}-{self.token}")
        self.futures.append(fut)
        return fut

    def submit(self, parts: list[Part], tail: Callable[..., Any], stage: str, name: str,
               tail_args: Callable[[int], tuple] | None = None) -> list[Any]:
        """One task per part; their futures, in partition order.
        ``tail_args(i)``: extra arguments of partition i's tail (futures
        among them are passed as their results)."""
        self._stages += 1
        n = len(parts)
        futs = [self.client.submit(
                    run_part, p.source, p.args, p.ops, tail,
                    tail_args(i) if tail_args else (), f"partition {i} of {n} of {name}",
                    key=f"data-{stage}{self._stages}-{i}-{self.token}")
                for i, p in enumerate(parts)]
        self.futures += futs
        return futs
