"""Dask graphs on the mesh: a Dask scheduler (``scheduler=client.get``),
``compute`` and ``persist``, built on the public client API.

.. code-block:: python

    x = da.random.random((2000, 2000), chunks=(500, 500))
    x.sum().compute(scheduler=client.get)
    fut = client.compute(x.sum())          # a mesh Future
    y = client.persist(x)                  # chunks kept on the mesh

How a graph runs:

* ``dsk`` is a legacy dict, a task-spec dict or (dask >= 2025.4) an
  expression; it becomes a task-spec graph through ``__dask_graph__()`` and
  ``dask._task_spec.convert_legacy_graph``, as ``dask.local.get_async`` does.
* It is culled to what ``keys`` need and ordered. A missing dependency or a
  cycle raises :class:`MissingDependencyError` / :class:`GraphCycleError`
  before anything is submitted.
* ``DataNode`` values and ``Alias`` nodes resolve here, without a remote task.
  Each ``Task`` (containers included) becomes one mesh task running
  ``task(values)`` with its dependencies passed as futures, so the mesh runs it
  once they are done.
* A mesh task's key is ``dask-<dask key>-<digest>``; the digest covers the
  Dask key, the task and the keys or values of its dependencies, so equal
  graphs share results and a name reused for other content does not.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import types
from collections.abc import Iterator, Mapping
from typing import Any

import cloudpickle

from mesh._client_future import Future
from mesh.integrations import require
from mesh.protocol.payload import _register_module_by_value

__all__ = [
    "GraphCycleError",
    "MissingDependencyError",
    "compute",
    "get",
    "get_async",
    "persist",
    "submit_graph",
]

_NAME_LIMIT = 80
"""Characters of the Dask key kept, readable, in a mesh key."""


class MissingDependencyError(KeyError):
    """A task depends on, or the caller asked for, a key the graph lacks."""

    def __str__(self) -> str:
        return str(self.args[0])


class GraphCycleError(ValueError):
    """The graph's dependencies form a cycle."""


class _Local:
    """A value resolved on the client (a ``DataNode`` or an alias of one)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _fetch(value: Any) -> Any:
    """The task ``persist`` puts in a graph: the mesh passes the stored value
    in; other schedulers hand it the mesh future itself."""
    return value.result() if isinstance(value, Future) else value


def _run(task: Any, values: dict) -> Any:
    return task(values)


# ---------------------------------------------------------------- the graph


def _task_graph(dsk: Any) -> dict:
    ts = require("dask._task_spec", "dask")
    if not isinstance(dsk, Mapping):
        dsk = dsk.__dask_graph__()
    return ts.convert_legacy_graph(dsk)


def _flatten(keys: Any) -> Iterator[Any]:
    if isinstance(keys, list):
        for k in keys:
            yield from _flatten(k)
    else:
        yield keys


def _pack(keys: Any, values: Mapping[Any, Any]) -> Any:
    if isinstance(keys, list):
        return [_pack(k, values) for k in keys]
    return values[keys]


def _deps(node: Any) -> list:
    return sorted(node.dependencies, key=repr)  # a set: fix the order


def _order(graph: Mapping, wanted: list) -> list:
    """Keys ``wanted`` needs, dependencies first. Raises on a missing key or
    a cycle (iterative depth-first search: deep chains do not recurse)."""
    state: dict[Any, int] = {}  # 1: on the current path, 2: done
    order: list = []
    for root in wanted:
        if root not in graph:
            raise MissingDependencyError(f"key {root!r} is not in the graph")
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(_deps(graph[root])))]
        while stack:
            key, deps = stack[-1]
            for dep in deps:
                if dep not in graph:
                    raise MissingDependencyError(
                        f"task {key!r} depends on {dep!r}, which is not in the graph")
                seen = state.get(dep)
                if seen is None:
                    state[dep] = 1
                    stack.append((dep, iter(_deps(graph[dep]))))
                    break
                if seen == 1:
                    path = [k for k, _ in stack]
                    cycle = [*path[path.index(dep):], dep]
                    raise GraphCycleError(
                        "the graph has a cycle: " + " -> ".join(map(repr, cycle)))
            else:
                stack.pop()
                state[key] = 2
                order.append(key)
    return order


_modules_seen: set[str] = set()


class _KeyPickler(cloudpickle.CloudPickler):
    """Pickles for hashing: a mesh future stands for its key. On the way it
    has the modules of the functions and classes it meets pickled by value if
    they are the user's own (as ``submit`` does for the function it is
    given), so tasks can use functions nested anywhere in their arguments."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.registered = False

    def persistent_id(self, obj: Any) -> Any:
        return obj.key if isinstance(obj, Future) else None

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type)):
            mod = getattr(obj, "__module__", None)
            if mod and mod not in _modules_seen:
                _modules_seen.add(mod)
                _register_module_by_value(obj)
                self.registered = True
        return super().reducer_override(obj)


def _digest(obj: Any) -> bytes:
    for _ in range(2):  # again if a module switched to by-value midway
        buf = io.BytesIO()
        pickler = _KeyPickler(buf)
        pickler.dump(obj)
        if not pickler.registered:
            break
    return hashlib.blake2b(buf.getvalue(), digest_size=16).digest()


def _name(key: Any) -> str:
    text = "-".join(map(str, key)) if isinstance(key, tuple) else str(key)
    return text[:_NAME_LIMIT]


def submit_graph(client: Any, dsk: Any, keys: list) -> dict[Any, Future | _Local]:
    """Submit what ``keys`` need; returns ``{key: Future or _Local}`` for
    every key of the culled graph. The values of ``keys`` are kept with the
    mesh's replicas; intermediates with ``replicas=1``: the mesh computes one
    again from its spec if its node dies while a task still needs it."""
    ts = require("dask._task_spec", "dask")
    graph = _task_graph(dsk)
    order = _order(graph, keys)
    wanted = set(keys)
    out: dict[Any, Future | _Local] = {}
    ident: dict[Any, bytes] = {}

    def identity(key: Any) -> bytes:
        if key not in ident:
            r = out[key]
            ident[key] = (r.key.encode() if isinstance(r, Future)
                          else b"v" + _digest(r.value))
        return ident[key]

    for key in order:
        node = graph[key]
        if isinstance(node, ts.Alias):
            out[key] = out[node.target]
        elif isinstance(node, ts.DataNode):
            out[key] = node.value if isinstance(node.value, Future) else _Local(node.value)
        elif (isinstance(node, ts.Task) and node.func is _fetch and len(node.args) == 1
              and isinstance(node.args[0], Future)):
            out[key] = node.args[0]  # persisted: the stored result itself
        else:
            deps = _deps(node)
            h = hashlib.blake2b(_digest((key, node)), digest_size=16)
            for d in deps:
                h.update(identity(d))
            values = {d: _unwrap(out[d]) for d in deps}
            out[key] = client.submit(_run, node, values,
                                     key=f"dask-{_name(key)}-{h.hexdigest()}",
                                     replicas=None if key in wanted else 1)
    return out


def _unwrap(r: Future | _Local) -> Any:
    return r.value if isinstance(r, _Local) else r


# ------------------------------------------------------------ entry points


def get(client: Any, dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """A Dask scheduler: the values of ``keys`` (nested as ``keys`` is).
    Scheduler options Dask passes through (``kwargs``) are ignored."""
    flat = list(_flatten(keys))
    res = submit_graph(client, dsk, flat)
    futs = {k: r for k, r in res.items() if k in set(flat) and isinstance(r, Future)}
    values = dict(zip(futs, client.gather(list(futs.values())), strict=True))
    return _pack(keys, {k: values[k] if k in values else _unwrap(res[k]) for k in flat})


async def get_async(client: Any, dsk: Any, keys: Any, **kwargs: Any) -> Any:
    """:func:`get` for an :class:`~mesh.AsyncClient`."""
    flat = list(_flatten(keys))
    res = submit_graph(client, dsk, flat)
    futs = {k: r for k, r in res.items() if k in set(flat) and isinstance(r, Future)}
    values = dict(zip(futs, await client.gather(list(futs.values())), strict=True))
    return _pack(keys, {k: values[k] if k in values else _unwrap(res[k]) for k in flat})


def _hold_until_done(outputs: list[Future], graph: dict) -> None:
    """Hold every future of ``graph`` until each of ``outputs`` is done: an
    intermediate kept once (``replicas=1``) that is lost while a task still
    needs it is computed again from its spec, and its own inputs from
    theirs, for as long as some future holds them (as ``get`` holds them
    until it returns)."""
    for f in outputs:
        f.add_done_callback(lambda _f, _graph=graph: None)


def _expr(collection: Any, optimize_graph: bool) -> Any:
    base = require("dask.base", "dask")
    if not base.is_dask_collection(collection):
        raise TypeError(f"expected a Dask collection, not {type(collection).__name__}")
    return base.collections_to_expr(collection, optimize_graph)


def compute(client: Any, collection: Any, optimize_graph: bool = True) -> Future:
    """Submit ``collection``'s graph and its finalisation; the Future's result
    is what ``collection.compute()`` returns."""
    from dask._expr import FinalizeCompute

    expr = FinalizeCompute(_expr(collection, optimize_graph)).optimize()
    (key,) = list(_flatten(expr.__dask_keys__()))
    res = submit_graph(client, expr, [key])
    r = res[key]
    if isinstance(r, Future):
        _hold_until_done([r], res)
        return r
    return client.submit(_fetch, r.value)  # a value known here: still a Future


def persist(client: Any, collections: Any, optimize_graph: bool = True) -> Any:
    """``collections`` (one or a list/tuple) backed by results kept on the
    mesh: their graphs hold the futures, so later computations reuse them."""
    ts = require("dask._task_spec", "dask")
    single = not isinstance(collections, (list, tuple))
    colls = [collections] if single else list(collections)
    out = []
    for coll in colls:
        expr = _expr(coll, optimize_graph).optimize()
        keys = list(_flatten(expr.__dask_keys__()))
        res = submit_graph(client, expr, keys)
        _hold_until_done([r for k in keys if isinstance(r := res[k], Future)], res)
        dsk = {k: (ts.Task(k, _fetch, res[k]) if isinstance(res[k], Future)
                   else ts.DataNode(k, _unwrap(res[k]))) for k in keys}
        rebuild, state = coll.__dask_postpersist__()
        out.append(rebuild(dsk, *state))
    return out[0] if single else type(collections)(out)
