"""Shared fixtures: the repository root on ``sys.path`` (so ``tests.procs``
and ``tests.transport_suite`` import the same way everywhere) and ``cluster``,
which starts real ``mesh join`` processes and always ends them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.procs import Cluster  # noqa: E402


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A :class:`tests.procs.Cluster`; every process it started is killed at the
    end of the test, pass or fail."""
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
