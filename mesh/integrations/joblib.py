"""joblib on the mesh: the ``"mesh"`` parallel backend.

.. code-block:: python

    import joblib
    with joblib.parallel_backend("mesh", client=client):   # client: default, the latest
        joblib.Parallel(n_jobs=-1)(joblib.delayed(f)(x) for x in xs)

Importing :mod:`mesh` registers the backend (lazily: this module is imported
the first time joblib builds the backend). Written against joblib >= 1.5's
``submit(func, callback)`` interface:

* joblib's automatic batching groups short calls until a batch takes about
  0.2-2 s; each batch is one mesh task (``pure=False``: joblib calls may have
  side effects).
* A ``Parallel`` inside a task runs sequentially in that task's worker, never
  back onto the mesh, so nested calls cannot deadlock waiting for workers.
"""

from __future__ import annotations

import os
from typing import Any

from mesh.integrations import recent_client, require

require("joblib", "joblib")

from joblib._parallel_backends import (  # noqa: E402
    AutoBatchingMixin,
    FallbackToBackend,
    ParallelBackendBase,
    SequentialBackend,
)

from mesh._client_future import Future  # noqa: E402
from mesh.protocol.payload import _register_module_by_value  # noqa: E402

__all__ = ["MeshBackend"]

_in_task = False
"""True in a mesh worker while it runs a joblib batch."""


def _run_batch(batch: Any) -> Any:
    global _in_task
    _in_task = True
    try:
        return batch()
    finally:
        _in_task = False


class MeshBackend(AutoBatchingMixin, ParallelBackendBase):
    """Runs joblib batches as mesh tasks of ``client`` (default: the most
    recently created :class:`~mesh.Client` that is still open).

    ``workers_per_node`` sizes ``n_jobs=-1`` (nodes known to the client times
    this; default this machine's CPU count): joblib keeps about twice that
    many batches in flight, and the mesh queues the rest."""

    supports_retrieve_callback = True
    supports_return_generator = True
    supports_timeout = True
    uses_threads = False
    supports_sharedmem = False
    default_n_jobs = -1

    def __init__(self, client: Any = None, workers_per_node: int | None = None,
                 nesting_level: int | None = None, inner_max_num_threads: int | None = None,
                 **backend_kwargs: Any) -> None:
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads, **backend_kwargs)
        self.client = client
        self.workers_per_node = workers_per_node or os.cpu_count() or 1
        self._pending: dict[str, Future] = {}

    def _client(self) -> Any:
        client = self.client or recent_client()
        if client is None:
            raise RuntimeError(
                "the 'mesh' joblib backend needs a client: create a mesh.Client first, or "
                "pass parallel_backend('mesh', client=client)")
        return client

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if _in_task:
            return 1
        if n_jobs is None or n_jobs < 0:
            return max(1, len(self._client().addresses) * self.workers_per_node)
        return n_jobs

    def configure(self, n_jobs: int = 1, parallel: Any = None, **backend_kwargs: Any) -> int:
        if _in_task:  # a Parallel inside a mesh task: run it right here
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self._client()  # fail now, with the reason, if there is no client
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def get_nested_backend(self) -> tuple[Any, int | None]:
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None

    def submit(self, func: Any, callback: Any = None) -> Future:
        for f, _args, _kwargs in getattr(func, "items", ()):
            _register_module_by_value(f)  # the user's functions go by value
        fut = self._client().submit(_run_batch, func, pure=False)
        self._pending[fut.key] = fut
        fut.add_done_callback(lambda f: self._pending.pop(f.key, None))
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    def retrieve_result_callback(self, out: Future) -> Any:
        return out.result()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        for fut in list(self._pending.values()):
            fut.cancel()
        self._pending.clear()

    def terminate(self) -> None:
        self.reset_batch_stats()
