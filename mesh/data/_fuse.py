"""Counting at C speed: a word count's map side without a Python call per word.

The seed's word count, ``flat_map(str.split).map(lambda w: (w, 1))
.reduce_by_key(operator.add)``, spends its map task calling the user's
function and updating a dict once per word. :func:`counting` recognises, at
plan time, a part whose map-side combine is that and only that, and the map
task then counts with :class:`collections.Counter` over the chain before the
pair function (C code, no Python call per item). It applies only where the
result is provably the one the general path gives:

* the combiner is ``reduce_by_key(operator.add)`` (``create`` the identity,
  ``merge_value`` exactly :func:`operator.add`), or ``count_by_value()``;
* the part's last operation is ``map(f)`` where ``f`` is a plain function
  whose code is exactly ``return (arg, C)`` with ``C`` an ``int`` constant
  (``lambda w: (w, 1)``, or the ``one_pair`` of ``count_by_value``): so a
  key seen ``k`` times combines to ``C + C + ... == k * C``, an exact
  ``int``, with the first-seen key object kept, keys in order of first
  appearance, as the general loop keeps them;
* the items reaching ``f`` are exact ``str``: the operation before it is
  ``flat_map(str.split)``, or there is none and the source is a
  ``read_text`` block (its lines). A ``str`` always hashes, so no item can
  fail as a key: every exception comes from the user's chain and passes
  through unchanged, as in the general path. (For items of unknown type an
  unhashable key must raise the named ``TypeError`` of
  :func:`mesh.data._shuffle.combine`, which needs the failing item in hand;
  those stay on the general path.)

Anything else runs the general path. ``tests/test_data_fuse.py`` checks the
recogniser and compares both paths with hypothesis.
"""

from __future__ import annotations

import collections
import dis
import inspect
import operator
import types
from collections.abc import Callable, Iterable
from typing import Any

from mesh.data._actions import identity
from mesh.data._plan import Part
from mesh.data._text import read_block

__all__ = ["constant_pair", "count_items", "counting"]

_PLAIN_FLAGS = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS | inspect.CO_GENERATOR \
    | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
_SKIP = frozenset({"RESUME", "NOP", "CACHE"})
_LOAD_ARG = frozenset({"LOAD_FAST", "LOAD_FAST_BORROW"})
_LOAD_CONST = frozenset({"LOAD_CONST", "LOAD_SMALL_INT"})


def constant_pair(f: Any) -> int | None:
    """``C`` when ``f`` is a plain function whose whole code is ``return
    (arg, C)`` for an ``int`` constant ``C`` (not a ``bool``); else None."""
    if type(f) is not types.FunctionType:
        return None
    code = f.__code__
    if (code.co_argcount != 1 or code.co_kwonlyargcount or code.co_flags & _PLAIN_FLAGS
            or code.co_freevars or code.co_cellvars):
        return None
    ops = [i for i in dis.get_instructions(code) if i.opname not in _SKIP]
    if len(ops) != 4:
        return None
    load, const, build, ret = ops
    if (load.opname not in _LOAD_ARG or load.arg != 0 or const.opname not in _LOAD_CONST
            or build.opname != "BUILD_TUPLE" or build.arg != 2 or ret.opname != "RETURN_VALUE"):
        return None
    value = const.argval
    return value if type(value) is int else None


def _yields_str(part: Part, before: tuple[tuple[str, Callable[..., Any]], ...]) -> bool:
    """Whether the operations ``before`` applied to ``part``'s source give exact ``str`` s."""
    if not before:
        return part.source is read_block
    kind, fn = before[-1]
    return kind == "flat_map" and fn is str.split


def counting(part: Part, create: Any, merge: Any) -> tuple[Part, int | None]:
    """``(part without its pair function, C)`` when the map-side combine of
    ``part`` under (``create``, ``merge``) is a count of ``str`` items times
    ``C`` (see the module's rules); else ``(part, None)``."""
    if create is not identity or merge is not operator.add or not part.ops:
        return part, None
    kind, fn = part.ops[-1]
    value = constant_pair(fn) if kind == "map" else None
    if value is None or not _yields_str(part, part.ops[:-1]):
        return part, None
    return Part(part.source, part.args, part.ops[:-1]), value


def count_items(items: Iterable[Any], value: int) -> dict[Any, int]:
    """Each distinct item with ``value`` times its count (what combining
    ``(item, value)`` pairs with ``+`` gives), in order of first appearance."""
    counts = collections.Counter(items)
    if value == 1:
        return counts
    return {k: n * value for k, n in counts.items()}
