"""Locality on real ``mesh join`` processes: a task whose input is a large
result runs on the node that holds that result, not on the node that owns
the task's key."""

from __future__ import annotations

import os

import pytest

from mesh.client import Client
from mesh.errors import TaskFailed
from tests.procs import FAST, Cluster, MeshProc, api, metrics
from tests.test_client_real import owner_of, start_mesh

CHUNK = 1_000_000
"""The locality threshold for this mesh (``transfer_chunk``): results stay
under the client's frame limit."""


def blob(n: int) -> bytes:
    return os.urandom(n)


def measure(b: bytes) -> tuple[int, int]:
    """The input's length, and the pid of the node this worker serves."""
    return len(b), os.getppid()


def holds(p: MeshProc, key: str) -> bool:
    return api(p.addr, "/v1/exec/stats", {"key": key})["key"]["result"] is not None


def test_a_task_consuming_a_large_result_runs_on_the_node_holding_it(
        cluster: Cluster) -> None:
    procs = start_mesh(cluster, 3, config={**FAST, "locality_bytes": CHUNK})
    by_name = {p.name: p for p in procs}
    entry = procs[0]
    with Client([entry.bind]) as client:
        kb = next(k for k in (f"big-{i}" for i in range(10_000))
                  if owner_of(k, procs)[0] != entry.name)
        big = client.submit(blob, 2 * CHUNK, key=kb, replicas=1)
        big.result(30)
        (holder,) = [p for p in procs if holds(p, kb)]
        ku = next(k for k in (f"use-{i}" for i in range(10_000))
                  if owner_of(k, procs)[0] not in (holder.name,))
        owner = by_name[owner_of(ku, procs)[0]]
        size, pid = client.submit(measure, big, key=ku).result(30)
        assert size == 2 * CHUNK
        assert pid == holder.popen.pid, "it ran on the node that holds its input"
        assert metrics(owner.addr).get("exec_tasks_placed_by_locality", 0) == 1
        # a small input is fetched and the task runs on its owner as usual
        small = client.submit(blob, 1000, key=f"{kb}-small", replicas=1)
        _size, pid = client.submit(measure, small, key=f"{ku}-small").result(30)
        assert pid == by_name[owner_of(f"{ku}-small", procs)[0]].popen.pid


def test_a_task_restricted_with_workers_runs_on_the_named_node_and_fetches_its_input(
        cluster: Cluster) -> None:
    procs = start_mesh(cluster, 3, config={**FAST, "locality_bytes": CHUNK})
    entry = procs[0]
    with Client([entry.bind]) as client:
        big = client.submit(blob, 2 * CHUNK, key="pinned-big", replicas=1)
        big.result(30)
        (holder,) = [p for p in procs if holds(p, "pinned-big")]
        named = next(p for p in procs if p is not holder)
        size, pid = client.submit(measure, big, key="pinned-use", workers=named.name).result(30)
        assert size == 2 * CHUNK
        assert pid == named.popen.pid, "it ran on the named node, not where its input is"
        pids = {client.submit(measure, b"x", key=f"pinned-{i}", workers=[named.name])
                .result(30)[1] for i in range(8)}
        assert pids == {named.popen.pid}
        gone = client.submit(measure, b"x", key="pinned-nowhere", workers="no-such-node")
        with pytest.raises(TaskFailed, match="may run only on no-such-node"):
            gone.result(30)
