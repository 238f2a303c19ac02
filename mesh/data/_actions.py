"""Small functions that run inside tasks: actions' per-partition tails and
their client-side combines, and the item functions that compose derived
transformations (``count_by_value``, ``distinct``, ``join``). Module-level,
so workers import them by reference."""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

add = operator.add

# ------------------------------------------------------------ action tails


def count(items: Iterable[Any]) -> int:
    n = 0
    for _ in items:
        n += 1
    return n


def concat(lists: list[list[Any]]) -> list[Any]:
    return list(itertools.chain.from_iterable(lists))


_EMPTY = ("empty",)


def reduce_tail(items: Iterable[Any], f: Callable[[Any, Any], Any]) -> tuple[bool, Any]:
    it = iter(items)
    acc = next(it, _EMPTY)
    if acc is _EMPTY:
        return (False, None)
    for x in it:
        acc = f(acc, x)
    return (True, acc)


def reduce_combine(f: Callable[[Any, Any], Any], results: list[tuple[bool, Any]]) -> Any:
    values = [v for ok, v in results if ok]
    if not values:
        raise TypeError("reduce() of an empty dataset")
    acc = values[0]
    for v in values[1:]:
        acc = f(acc, v)
    return acc


def take(items: Iterable[Any], n: int) -> list[Any]:
    return list(itertools.islice(items, n))


def take_combine(n: int, lists: list[list[Any]]) -> list[Any]:
    return list(itertools.islice(itertools.chain.from_iterable(lists), n))


def top(items: Iterable[Any], n: int, key: Callable[[Any], Any] | None) -> list[Any]:
    return heapq.nlargest(n, items, key=key)


def top_combine(n: int, key: Callable[[Any], Any] | None, lists: list[list[Any]]) -> list[Any]:
    return heapq.nlargest(n, itertools.chain.from_iterable(lists), key=key)


# ------------------------------------------------------- item functions


def identity(x: Any) -> Any:
    return x


def one_pair(x: Any) -> tuple[Any, int]:
    return (x, 1)


def none_pair(x: Any) -> tuple[Any, None]:
    return (x, None)


def first(a: Any, b: Any) -> Any:
    return a


def key_of(kv: tuple[Any, Any]) -> Any:
    return kv[0]


def singleton(v: Any) -> list[Any]:
    return [v]


def append(acc: list[Any], v: Any) -> list[Any]:
    acc.append(v)
    return acc


def extend(acc: list[Any], more: list[Any]) -> list[Any]:
    acc.extend(more)
    return acc


def tag_left(kv: Any) -> tuple[Any, tuple[int, Any]]:
    k, v = pair(kv, "join")
    return (k, (0, v))


def tag_right(kv: Any) -> tuple[Any, tuple[int, Any]]:
    k, v = pair(kv, "join")
    return (k, (1, v))


def pair(item: Any, where: str) -> tuple[Any, Any]:
    try:
        k, v = item
    except (TypeError, ValueError):
        raise TypeError(f"{where}: items must be (key, value) pairs, "
                        f"not {type(item).__name__} {item!r:.80}") from None
    return k, v


def join_create(tv: tuple[int, Any]) -> tuple[list[Any], list[Any]]:
    sides: tuple[list[Any], list[Any]] = ([], [])
    sides[tv[0]].append(tv[1])
    return sides


def join_add(acc: tuple[list[Any], list[Any]], tv: tuple[int, Any]) -> tuple[list, list]:
    acc[tv[0]].append(tv[1])
    return acc


def join_merge(a: tuple[list[Any], list[Any]], b: tuple[list[Any], list[Any]]
               ) -> tuple[list, list]:
    a[0].extend(b[0])
    a[1].extend(b[1])
    return a


def join_emit(item: tuple[Any, tuple[list[Any], list[Any]]]) -> Iterator[Any]:
    k, (lefts, rights) = item
    for left in lefts:
        for right in rights:
            yield (k, (left, right))
