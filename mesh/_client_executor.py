"""``client.executor()``: a :class:`concurrent.futures.Executor` over a mesh
:class:`~mesh.client.Client`."""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mesh._client_future import Future

if TYPE_CHECKING:
    from mesh.client import Client

__all__ = ["MeshExecutor"]


class MeshExecutor(concurrent.futures.Executor):
    """``concurrent.futures.Executor`` over a :class:`Client`. ``map`` sends
    its calls in batches; ``submit`` returns a standard
    ``concurrent.futures.Future``.

    A future stays pending until the mesh has its result, so ``cancel()``
    works until then, and cancelling it also drops the task from the mesh
    (unless another future wants it). ``shutdown(cancel_futures=True)``
    cancels every call, submitted or mapped, that has not finished."""

    def __init__(self, client: Client, pure: bool = False) -> None:
        self._client = client
        self._pure = pure
        self._outstanding: dict[concurrent.futures.Future[Any], Future] = {}
        self._mapped: list[Future] = []
        self._lock = threading.Lock()
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
               ) -> concurrent.futures.Future[Any]:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        mesh_future = self._client.submit(fn, *args, pure=self._pure, **kwargs)
        cf: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            self._outstanding[cf] = mesh_future

        def settle() -> None:  # on the client's loop thread, with the value here
            f = mesh_future
            with self._lock:
                self._outstanding.pop(cf, None)
            if cf.done():
                return  # cancelled by the caller first
            try:
                value = f._state.value()
            except BaseException as exc:  # the task's error becomes the future's
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    cf.set_exception(exc)
                return
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                cf.set_result(value)  # unless cancelled in the meantime

        def forward_cancel(done: concurrent.futures.Future[Any]) -> None:
            if done.cancelled():
                mesh_future.cancel()

        cf.add_done_callback(forward_cancel)
        self._client._core.waits.on_value(mesh_future._state, settle)
        return cf

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1) -> Iterator[Any]:
        if self._shutdown:
            raise RuntimeError("cannot map after shutdown")
        futs = self._client.map(fn, *iterables, pure=self._pure)
        with self._lock:
            self._mapped = [f for f in self._mapped if not f.done()] + futs
        import time

        deadline = None if timeout is None else time.monotonic() + timeout

        def results() -> Iterator[Any]:
            for f in futs:
                remaining = None if deadline is None else deadline - time.monotonic()
                yield f.result(remaining)

        return results()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new calls after this. With ``cancel_futures``, every call that
        has not finished is cancelled (its ``result()`` raises
        ``CancelledError``); with ``wait``, return once the rest are done."""
        self._shutdown = True
        if cancel_futures:
            with self._lock:
                pending = list(self._outstanding)
                mapped, self._mapped = self._mapped, []
            for cf in pending:
                cf.cancel()
            for f in mapped:
                if not f.done():
                    f.cancel()
        if wait:
            with self._lock:
                pending = list(self._outstanding)
            concurrent.futures.wait(pending)
