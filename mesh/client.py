"""Run Python functions on a mesh: :class:`Client`, :class:`AsyncClient`.

.. code-block:: python

    from mesh import Client, as_completed

    with Client("127.0.0.1:7946") as client:          # any node of the mesh
        assert client.submit(pow, 2, 10).result() == 1024
        futs = client.map(inc, range(10_000))
        assert client.gather(futs) == [i + 1 for i in range(10_000)]
        total = client.submit(sum, futs)              # futures as arguments: a task graph
        for fut in as_completed(futs): ...
        with client.executor() as ex:                 # a concurrent.futures.Executor
            list(ex.map(square, xs))

Functions and arguments are pickled with cloudpickle (functions of the
user's own modules by value, installed packages by reference). With
``pure=True`` (the default, as in Dask) a task's key is a hash of its function
and arguments, so equal calls share one result; pass ``pure=False`` for
functions with side effects or randomness.

The secret defaults to ``MESH_SECRET`` from the environment, like the nodes.
Both clients share one engine (:mod:`mesh._client_core`); the sync client
runs it on an event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mesh import actors as _actors
from mesh._client_core import ClientCore
from mesh._client_executor import MeshExecutor
from mesh._client_future import Future, as_completed
from mesh._client_scatter import scatter_api
from mesh._loop import new_event_loop
from mesh.addresses import format_address
from mesh.config import DEFAULT
from mesh.errors import KilledWorker, MeshUnavailable, TaskFailed
from mesh.integrations import remember
from mesh.runtime import Runtime
from mesh.secrets import ENV_VAR
from mesh.wire import Secrets, normalize_secrets

__all__ = ["AsyncClient", "Client", "Future", "KilledWorker", "MeshExecutor", "MeshUnavailable",
           "TaskFailed", "as_completed"]


def _secret(secret: Secrets) -> list[bytes]:
    """One secret or several (rotation: ``[new, old]``, the first seals, all
    open); ``None`` reads ``MESH_SECRET``."""
    if secret is None:
        secret = os.environ.get(ENV_VAR) or None
    return normalize_secrets(secret)


def _addresses(address: str | Iterable[str]) -> list[str]:
    return [address] if isinstance(address, str) else list(address)


def _calls(iterables: tuple[Iterable[Any], ...]) -> Iterator[tuple[tuple, dict]]:
    empty: dict = {}
    for args in zip(*iterables, strict=False):
        yield args, empty


class _Api:
    """Operations common to both clients."""

    _core: ClientCore

    def submit(self, func: Callable[..., Any], *args: Any, key: str | None = None,
               pure: bool = True, retries: int = 0, replicas: int | None = None,
               workers: str | Iterable[str] | None = None, **kwargs: Any) -> Future:
        """Run ``func(*args, **kwargs)`` on the mesh. Futures among the
        arguments (at any depth) are replaced by their results first.
        ``retries``: run again up to this many times if it raises.
        ``replicas``: how many nodes keep the result (default: the nodes'
        ``--replicas``); below that, a lost result is computed again from its
        spec (lineage), which its nodes keep.
        ``workers``: a node name (``mesh join --name``) or names it must run
        on, whatever locality or stealing would choose; it fails with
        ``TaskFailed`` if none of them is alive when it is to run."""
        return self._core.build(func, [(args, kwargs)], pure=pure, retries=retries, key=key,
                                replicas=replicas, workers=workers)[0]

    def map(self, func: Callable[..., Any], *iterables: Iterable[Any], pure: bool = True,
            retries: int = 0, replicas: int | None = None,
            workers: str | Iterable[str] | None = None) -> list[Future]:
        """``submit(func, *items)`` for each item tuple of ``iterables``,
        sent in batches."""
        return self._core.build(func, _calls(iterables), pure=pure, retries=retries,
                                replicas=replicas, workers=workers)

    def scatter(self, data: Any, *, replicas: int | None = None, hash: bool = True,
                broadcast: bool = False, timeout: float | None = None) -> Any:
        """Put ``data`` on the mesh (a list or tuple: each item; a dict: each
        value, under its key) as futures whose results live on ``replicas``
        nodes (``broadcast``: all); on an ``AsyncClient``, awaitable."""
        return scatter_api(self, data, replicas, hash, broadcast, timeout)

    def compute(self, collection: Any, optimize_graph: bool = True) -> Future:
        """Run a Dask collection's graph; a Future of its computed value."""
        from mesh.integrations import dask

        return dask.compute(self, collection, optimize_graph)

    def persist(self, collections: Any, optimize_graph: bool = True, **kwargs: Any) -> Any:
        """Dask collection(s) backed by their results, kept on the mesh."""
        from mesh.integrations import dask

        return dask.persist(self, collections, optimize_graph)

    def read_text(self, paths: Any, blocksize: int | str = "64MiB",
                  encoding: str = "utf-8") -> Any:
        """A :class:`~mesh.data.Dataset` of the lines of text files (a path, a
        glob or a list), one partition per block, read by the nodes."""
        from mesh import data

        return data.read_text(self, paths, blocksize, encoding)

    def from_sequence(self, iterable: Iterable[Any], npartitions: int | None = None) -> Any:
        """A :class:`~mesh.data.Dataset` of the items of ``iterable``."""
        from mesh import data

        return data.from_sequence(self, iterable, npartitions)

    # --- actors (mesh.actors, docs/actors.md) --------------------------------
    def actor(self, cls: type, *args: Any, name: str | None = None, durable: bool = True,
              replicas: int | None = None, **kwargs: Any) -> Any:
        """Make ``cls(*args, **kwargs)`` an actor (a named one once); its
        :class:`~mesh.ActorHandle` (on an ``AsyncClient``, awaitable)."""
        return _actors.make(self, cls, args, kwargs, name, durable, replicas)

    def get_actor(self, name: str) -> Any:
        """The handle of the actor made with ``name`` (``ValueError`` if none)."""
        return _actors.get(self, name)

    def who_has(self, futures_or_handles: Any) -> Any:
        """``{key: [node, ...]}`` for futures (the nodes holding each result)
        and actor handles (the host first, then the replicas); on an
        ``AsyncClient``, awaitable."""
        return _actors.who_has(self, futures_or_handles)

    @property
    def node(self) -> str:
        """The name of the node this client is attached to."""
        return self._core.node

    @property
    def addresses(self) -> list[str]:
        """Node addresses this client knows (the current one first)."""
        return [format_address(a) for a in self._core.addresses]


class Client(_Api):
    """A blocking client; usable from any thread."""

    def __init__(self, address: str | Iterable[str], *, secret: Secrets = None,
                 connect_timeout: float = 5.0, reconnect_timeout: float = 30.0,
                 max_body: int = DEFAULT.max_http_body) -> None:
        self._core = ClientCore(_addresses(address), _secret(secret), max_body=max_body,
                                connect_timeout=connect_timeout,
                                reconnect_timeout=reconnect_timeout)
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mesh-client",
                                        daemon=True)
        self._thread.start()
        self._closed = False
        try:
            self._call(self._core.start())
        except BaseException:
            self._stop_loop()
            raise
        remember(self)  # the joblib backend's default client

    def _call(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    _async = False

    def gather(self, futures: Iterable[Future] | Future, timeout: float | None = None,
               errors: str = "raise", progress: bool = False) -> Any:
        """Results of ``futures`` in order (a single future: its result).
        ``errors="raise"`` re-raises the first error; ``"skip"`` leaves failed
        ones out. ``TimeoutError`` after ``timeout`` seconds. ``progress=True``
        shows a progress bar (done, failed, rate) while waiting."""
        if progress:
            from mesh.ops._progress import progress as show

            show(futures, timeout=timeout)
        if isinstance(futures, Future):
            return futures.result(timeout)
        futs = list(futures)
        self._core.waits.wait_states([f._state for f in futs], timeout, values=True)
        return _collect(futs, errors)

    def get(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """A Dask scheduler (``scheduler=client.get``): the values of ``keys``."""
        from mesh.integrations import dask

        return dask.get(self, dsk, keys, **kwargs)

    def executor(self, pure: bool = False) -> MeshExecutor:
        """A :class:`concurrent.futures.Executor` that runs on the mesh."""
        return MeshExecutor(self, pure=pure)

    def close(self) -> None:
        """Disconnect; the mesh forgets this client's results. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._core.close(), timeout=10)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Api):
    """The same operations for asyncio code: ``async with AsyncClient(addr)``;
    ``await client.submit(f, x)`` gives the result (awaiting a future does),
    ``await client.gather(futures)``."""

    def __init__(self, address: str | Iterable[str], *, secret: Secrets = None,
                 connect_timeout: float = 5.0, reconnect_timeout: float = 30.0,
                 max_body: int = DEFAULT.max_http_body, runtime: Runtime | None = None,
                 client_id: str | None = None) -> None:
        """``runtime``: the network and clock to use (default: a real one);
        the simulator passes its own, with a ``client_id`` drawn from its seed."""
        self._core = ClientCore(_addresses(address), _secret(secret), max_body=max_body,
                                connect_timeout=connect_timeout,
                                reconnect_timeout=reconnect_timeout, runtime=runtime,
                                client_id=client_id)
        self._started = False

    _async = True

    async def start(self) -> AsyncClient:
        if not self._started:
            await self._core.start()
            self._started = True
        return self

    def __await__(self) -> Any:
        return self.start().__await__()

    async def gather(self, futures: Iterable[Future] | Future, timeout: float | None = None,
                     errors: str = "raise", progress: bool = False) -> Any:
        if progress:
            from mesh.ops._progress import aprogress

            await aprogress([futures] if isinstance(futures, Future) else list(futures),
                            timeout=timeout)
        if isinstance(futures, Future):
            return await asyncio.wait_for(self._core.waits.wait_async(futures._state), timeout)
        futs = list(futures)

        async def wait_all() -> None:
            for f in futs:
                if not f._state.done:
                    await self._core.waits.wait_done(f._state)
            await self._core.waits.wait_values([f._state for f in futs])

        await asyncio.wait_for(wait_all(), timeout)
        return _collect(futs, errors)

    async def get(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        """``await client.get(dsk, keys)``: the values of a Dask graph's ``keys``."""
        from mesh.integrations import dask

        return await dask.get_async(self, dsk, keys, **kwargs)

    async def close(self) -> None:
        await self._core.close()

    async def __aenter__(self) -> AsyncClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _collect(futs: list[Future], errors: str) -> list[Any]:
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    out = []
    for f in futs:
        if errors == "skip" and f._state.error() is not None:
            continue
        out.append(f._state.value())
    return out


def _handle_client(addresses: list[str]) -> Client:
    """The process-wide client of actor handles unpickled in a task or an actor."""
    return Client(addresses)


_actors.set_client_factory(_handle_client)
