"""The lazy :class:`Dataset`: transformations build lineage, actions run it.

A Dataset is its client, a one-line name, its parents and a planner that
turns it into :class:`~mesh.data._plan.Part` s. Nothing runs until an action;
an action plans the lineage once (narrow operations fused, each shuffle's
map tasks submitted), submits one task per output partition with the
action's per-partition tail, and combines the small results on the client.
On an :class:`~mesh.AsyncClient` dataset every action returns an awaitable.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from mesh.data import _actions as A
from mesh.data import _shuffle as S
from mesh.data._plan import Part, Plan, identity
from mesh.protocol.payload import _register_module_by_value

__all__ = ["Dataset"]

Planner = Callable[[Plan], list[Part]]


def fname(f: Any) -> str:
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or repr(f)


def _check_callable(f: Any, method: str, arg: str = "f") -> None:
    """Refuse a non-callable; have the user's own module pickled by value (as
    ``submit`` does for its function), so workers need not import it."""
    if not callable(f):
        raise TypeError(f"{method}: {arg} must be callable, not {type(f).__name__}")
    _register_module_by_value(f)


def _check_count(n: Any, what: str, minimum: int = 1) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{what} must be an int, not {type(n).__name__}")
    if n < minimum:
        raise ValueError(f"{what} must be at least {minimum}, not {n}")
    return n


class Dataset:
    """A partitioned collection on the mesh, evaluated lazily (like a Spark
    RDD or a Dask bag). Build one with ``client.from_sequence`` or
    ``client.read_text``."""

    def __init__(self, client: Any, name: str, npartitions: int,
                 parents: tuple[Dataset, ...], planner: Planner) -> None:
        self._client = client
        self._name = name
        self._npartitions = npartitions
        self._parents = parents
        self._planner = planner

    @property
    def npartitions(self) -> int:
        return self._npartitions

    def __repr__(self) -> str:
        lines = [f"Dataset(npartitions={self._npartitions})"]
        self._lineage(lines, "  ")
        return "\n".join(lines)

    def _lineage(self, lines: list[str], indent: str) -> None:
        lines.append(f"{indent}{self._name}  [{self._npartitions}]")
        for other in self._parents[1:]:
            lines.append(f"{indent}| other:")
            other._lineage(lines, indent + "|   ")
        if self._parents:
            self._parents[0]._lineage(lines, indent)

    # ------------------------------------------------------- narrow

    def _narrow(self, kind: str, f: Callable[..., Any]) -> Dataset:
        _check_callable(f, kind)
        op = (kind, f)
        return Dataset(self._client, f"{kind}({fname(f)})", self._npartitions, (self,),
                       lambda plan: [p.then(op) for p in plan.parts(self)])

    def map(self, f: Callable[[Any], Any]) -> Dataset:
        """``f(item)`` for each item."""
        return self._narrow("map", f)

    def flat_map(self, f: Callable[[Any], Iterable[Any]]) -> Dataset:
        """The items of ``f(item)`` for each item."""
        return self._narrow("flat_map", f)

    def filter(self, f: Callable[[Any], Any]) -> Dataset:
        """The items for which ``f(item)`` is true."""
        return self._narrow("filter", f)

    def map_partitions(self, f: Callable[[Any], Iterable[Any]]) -> Dataset:
        """``f(iterator over a partition)`` for each partition; it returns an
        iterable of the new partition's items."""
        return self._narrow("map_partitions", f)

    def union(self, other: Dataset) -> Dataset:
        """The partitions of this dataset, then those of ``other`` (no shuffle)."""
        self._same_client(other, "union")
        return Dataset(self._client, "union()", self._npartitions + other._npartitions,
                       (self, other), lambda plan: [*plan.parts(self), *plan.parts(other)])

    # ------------------------------------------------------- shuffles

    def _target(self, npartitions: int | None, method: str) -> int:
        if npartitions is None:
            return max(self._npartitions, 1)
        return _check_count(npartitions, f"{method}: npartitions")

    def _same_client(self, other: Any, method: str) -> None:
        if not isinstance(other, Dataset):
            raise TypeError(f"{method}: other must be a Dataset, not {type(other).__name__}")
        if other._client is not self._client:
            raise ValueError(f"{method}: both datasets must belong to the same client")

    def _combine(self, c: S.Combiner, n: int, name: str,
                 parents: tuple[Dataset, ...] = ()) -> Dataset:
        return Dataset(self._client, name, n, parents or (self,),
                       lambda plan: S.plan_combine(plan, self, c, n, name))

    def _alias(self, name: str, inner: Dataset, parents: tuple[Dataset, ...]) -> Dataset:
        """``inner`` under one name in the lineage."""
        return Dataset(self._client, name, inner._npartitions, parents,
                       lambda plan: plan.parts(inner))

    def reduce_by_key(self, f: Callable[[Any, Any], Any], npartitions: int | None = None
                      ) -> Dataset:
        """``(key, value)`` items: one ``(key, f(f(v1, v2), v3)...)`` per key.
        Values combine on the map side first; ``f`` must be associative."""
        _check_callable(f, "reduce_by_key")
        n = self._target(npartitions, "reduce_by_key")
        c = S.Combiner(A.identity, f, f, "reduce_by_key")
        return self._combine(c, n, f"reduce_by_key({fname(f)}, npartitions={n})")

    def group_by_key(self, npartitions: int | None = None) -> Dataset:
        """``(key, value)`` items: one ``(key, [values...])`` per key."""
        n = self._target(npartitions, "group_by_key")
        c = S.Combiner(A.singleton, A.append, A.extend, "group_by_key")
        return self._combine(c, n, f"group_by_key(npartitions={n})")

    def count_by_value(self) -> Dataset:
        """``(value, count)`` for each distinct item."""
        inner = self.map(A.one_pair).reduce_by_key(A.add)
        return self._alias("count_by_value()", inner, (self,))

    def distinct(self) -> Dataset:
        """Each distinct item once."""
        inner = self.map(A.none_pair).reduce_by_key(A.first).map(A.key_of)
        return self._alias("distinct()", inner, (self,))

    def join(self, other: Dataset, npartitions: int | None = None) -> Dataset:
        """Inner join of two ``(key, value)`` datasets: ``(key, (left, right))``
        for each pair of values with equal keys, as in Spark."""
        self._same_client(other, "join")
        n = (_check_count(npartitions, "join: npartitions") if npartitions is not None
             else max(self._npartitions, other._npartitions, 1))
        c = S.Combiner(A.join_create, A.join_add, A.join_merge, "join")
        tagged = self.map(A.tag_left).union(other.map(A.tag_right))
        inner = tagged._combine(c, n, f"join(npartitions={n})").flat_map(A.join_emit)
        return self._alias(f"join(npartitions={n})", inner, (self, other))

    def sort_by(self, key: Callable[[Any], Any] | None = None, reverse: bool = False,
                npartitions: int | None = None) -> Dataset:
        """Items ordered by ``key(item)`` (the item itself when ``None``),
        range-partitioned from a sample: partition 0 holds the first items,
        so ``take(n)`` gives the first n."""
        if key is not None:
            _check_callable(key, "sort_by", "key")
        if not isinstance(reverse, bool):
            raise TypeError(f"sort_by: reverse must be a bool, not {type(reverse).__name__}")
        n = self._target(npartitions, "sort_by")
        name = f"sort_by({fname(key) if key else 'None'}, reverse={reverse})"
        return Dataset(self._client, name, n, (self,),
                       lambda plan: S.plan_sort(plan, self, key, reverse, n, name))

    def repartition(self, npartitions: int) -> Dataset:
        """The same items in ``npartitions`` partitions of near-equal length."""
        n = _check_count(npartitions, "repartition: npartitions")
        name = f"repartition({n})"
        return Dataset(self._client, name, n, (self,),
                       lambda plan: S.plan_repartition(plan, self, n, name))

    # ------------------------------------------------------- actions

    def _run(self, tail: Callable[..., Any], combine: Callable[[list[Any]], Any],
             tail_args: Callable[[int], tuple] | None = None, stage: str = "out") -> Any:
        plan = Plan(self._client)
        futs = plan.submit(plan.parts(self), tail, stage, self._name, tail_args)
        client = self._client
        if inspect.iscoroutinefunction(client.gather):
            async def finish() -> Any:
                got = await client.gather(futs)
                del plan.futures[:]  # held until here (see Plan)
                return combine(got)
            return finish()
        got = client.gather(futs)
        del plan.futures[:]
        return combine(got)

    def collect(self) -> Any:
        """Every item, in partition order, as a list."""
        return self._run(list, A.concat)

    def count(self) -> Any:
        """How many items."""
        return self._run(A.count, sum)

    def sum(self) -> Any:
        """The sum of the items (0 when empty)."""
        return self._run(sum, sum)

    def reduce(self, f: Callable[[Any, Any], Any]) -> Any:
        """``f`` folded over the items (associative ``f``); ``TypeError`` when
        the dataset is empty, like ``functools.reduce``."""
        _check_callable(f, "reduce")
        return self._run(A.reduce_tail, partial(A.reduce_combine, f), lambda i: (f,))

    def take(self, n: int) -> Any:
        """The first ``n`` items, in partition order."""
        _check_count(n, "take: n", 0)
        return self._run(A.take, partial(A.take_combine, n), lambda i: (n,))

    def top(self, n: int, key: Callable[[Any], Any] | None = None) -> Any:
        """The ``n`` largest items by ``key``, largest first."""
        _check_count(n, "top: n", 0)
        if key is not None:
            _check_callable(key, "top", "key")
        return self._run(A.top, partial(A.top_combine, n, key), lambda i: (n, key))

    def to_text(self, directory: str, encoding: str = "utf-8") -> Any:
        """Write each partition as ``directory/part-NNNNN.txt`` (``str`` of
        each item, one per line), on the node that computes it; the paths."""
        if not isinstance(directory, str) or not directory:
            raise TypeError("to_text: directory must be a non-empty str")
        from mesh.data._text import write_text

        directory = os.path.abspath(directory)
        return self._run(write_text, list, lambda i: (directory, i, encoding))

    def persist(self) -> Any:
        """Compute the partitions and keep them on the mesh (each one a task
        result, replicated like any); a dataset that reads them."""
        plan = Plan(self._client)
        futs = plan.submit(plan.parts(self), list, "persist", self._name)
        parts = [Part(identity, (f,)) for f in futs]
        kept = Dataset(self._client, f"persisted({self._name})", len(futs), (self,),
                       lambda plan: parts)
        kept._futures = futs  # type: ignore[attr-defined]  # held: the mesh keeps them
        client = self._client
        if inspect.iscoroutinefunction(client.gather):
            async def finish() -> Dataset:
                await client.gather(futs)
                del plan.futures[:]  # the shuffles' intermediates (see Plan)
                return kept
            return finish()
        client.gather(futs)
        del plan.futures[:]
        return kept
