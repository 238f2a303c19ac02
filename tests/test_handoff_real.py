"""A real one-node mesh: a task that returns something unpicklable fails with
TaskFailed naming the type, and the node keeps serving."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mesh.client import Client, TaskFailed
from tests.procs import Cluster
from tests.test_client_real import start_mesh


def a_lock() -> object:
    return threading.Lock()


def inc(x: int) -> int:
    return x + 1


def test_an_unpicklable_result_raises_task_failed_naming_its_type(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        procs = start_mesh(cluster, 1)
        with Client([p.bind for p in procs]) as client:
            with pytest.raises(TaskFailed, match=r"_thread\.lock"):
                client.submit(a_lock).result(timeout=30)
            assert client.submit(inc, 1).result(timeout=30) == 2
    finally:
        cluster.close()
