"""Progress bars over futures on a real mesh: the captured terminal output
reaches 100% and counts the failed tasks."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from rich.console import Console

import mesh
from mesh import AsyncClient, Client
from mesh.ops._progress import Tracker
from tests.procs import Cluster, MeshProc
from tests.test_client_real import start_mesh


@pytest.fixture(scope="module")
def mesh2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[MeshProc]]:
    cluster = Cluster(tmp_path_factory.mktemp("progress2"))
    try:
        yield start_mesh(cluster, 2, config={})
    finally:
        cluster.close()


def terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=140, color_system=None), buf


def last_frame(text: str) -> str:
    """The bar as last drawn (a terminal redraws it in place)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [line for line in re.split(r"[\r\n]", text) if line.strip()][-1]


def half(x: int) -> float:
    if x % 10 == 0:
        raise ValueError(f"no half of {x}")
    return x / 2


def test_progress_reaches_100_percent_and_counts_failures(mesh2: list[MeshProc]) -> None:
    console, buf = terminal()
    with Client([p.bind for p in mesh2]) as client:
        futures = client.map(half, range(1, 101), pure=False)
        mesh.progress(futures, console=console, timeout=60)
        assert all(f.done() for f in futures)
    frame = last_frame(buf.getvalue())
    assert "100%" in frame and "100/100" in frame, frame
    assert "10 failed" in frame, frame
    assert re.search(r"[\d,.]+/s", frame), frame


def test_gather_with_progress_shows_the_bar_and_returns_the_results(
    mesh2: list[MeshProc], capsys: pytest.CaptureFixture[str]
) -> None:
    with Client([p.bind for p in mesh2]) as client:
        futures = client.map(half, range(1, 10), pure=False)
        assert client.gather(futures, progress=True) == [x / 2 for x in range(1, 10)]
    err = capsys.readouterr().err
    assert "100%" in err and "9/9" in err and "0 failed" in err, err


async def test_async_gather_with_progress(
    mesh2: list[MeshProc], capsys: pytest.CaptureFixture[str]
) -> None:
    async with AsyncClient([p.bind for p in mesh2]) as client:
        futures = client.map(half, range(1, 6), pure=False)
        assert await client.gather(futures, progress=True) == [x / 2 for x in range(1, 6)]
    assert "5/5" in capsys.readouterr().err


def test_tracker_is_reusable_for_any_count_of_pieces() -> None:
    console, buf = terminal()
    with Tracker(4, "partitions", console) as bar:
        for i in range(4):
            bar.advance(failed=i == 3)
    frame = last_frame(buf.getvalue())
    assert "partitions" in frame and "4/4" in frame and "1 failed" in frame, frame
