"""Progress bars over futures: ``mesh.progress(futures)`` and
``client.gather(futures, progress=True)``.

The bar (rich, which also renders in Jupyter) shows done, failed, the rate
and the time left, on stderr unless a console is given. :class:`Tracker` is
the reusable part: anything that counts finished pieces of a known total
(a dataset's partitions, for one) drives it with :meth:`Tracker.advance`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from mesh._client_future import Future

__all__ = ["Tracker", "aprogress", "progress"]

FAILED_STATUSES = frozenset({"error", "cancelled", "lost"})
"""Future statuses counted as failed; ``finished`` counts as done."""


class Tracker:
    """One progress bar of ``total`` pieces; use as a context manager."""

    def __init__(self, total: int, description: str = "tasks",
                 console: Console | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total = total
        self.done = 0
        self.failed = 0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            MofNCompleteColumn(), TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("[cyan]{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True), refresh_per_second=8,
        )
        self._task = self._progress.add_task(description, total=total, failed=0, rate="-/s")
        self._started = time.monotonic()

    def __enter__(self) -> Tracker:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.refresh()
        self._progress.stop()

    def advance(self, failed: bool = False, n: int = 1) -> None:
        """``n`` more pieces finished (``failed`` ones count in both)."""
        self.done += n
        if failed:
            self.failed += n
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._progress.update(self._task, advance=n, failed=self.failed,
                              rate=f"{self.done / elapsed:,.1f}/s")


def _failed(future: Future) -> bool:
    return future.status in FAILED_STATUSES


def progress(futures: Iterable[Future] | Future, *, description: str = "tasks",
             timeout: float | None = None, console: Console | None = None) -> None:
    """Show a progress bar until every future is done (finished, failed or
    cancelled). Raises ``TimeoutError`` after ``timeout`` seconds; the tasks
    keep running. Call ``gather`` after it for the results."""
    from mesh._client_future import Future, as_completed

    futs = [futures] if isinstance(futures, Future) else list(futures)
    with Tracker(len(futs), description, console) as bar:
        for future in as_completed(futs, timeout=timeout):
            bar.advance(failed=_failed(future))


async def aprogress(futures: Iterable[Future], *, description: str = "tasks",
                    timeout: float | None = None, console: Console | None = None) -> None:
    """:func:`progress` for asyncio code (``AsyncClient.gather(progress=True)``)."""
    from mesh._client_future import as_completed

    futs = list(futures)
    with Tracker(len(futs), description, console) as bar:
        async for future in as_completed(futs, timeout=timeout):
            bar.advance(failed=_failed(future))
