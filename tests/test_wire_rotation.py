"""Rotating the cluster secret on a real 3-node mesh with two rolling
restarts, while a client submits tasks throughout: no task fails, no node is
ever suspected, and at no moment do two nodes stop hearing each other. The
procedure is the README's:

1. restart each node with ``--secret-file new --secret-file old`` (each seals
   with ``new`` to the nodes that hold it, ``old`` to the others);
2. restart each node with ``--secret-file new`` alone.

The client holds ``[new, old]`` from the start, when every node still holds
only ``old``."""

from __future__ import annotations

import threading
from pathlib import Path

from mesh.client import Client
from tests.procs import FAST, Cluster, MeshProc, free_ports, wait_until

OLD, NEW = b"old-secret", b"new-secret"


def inc(x: int) -> int:
    return x + 1


class Submitter:
    """Submits a task after another through whichever client is current and
    records every outcome."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.done = 0
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                assert self.client.submit(inc, i).result(timeout=60) == i + 1
                self.done += 1
            except BaseException as exc:  # recorded: the test fails on any
                self.failures.append(exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(90)


def _files(tmp: Path, *secrets: bytes) -> list[str]:
    args = []
    for s in secrets:
        path = tmp / f"secret-{s.decode()}"
        path.write_bytes(s + b"\n")
        args += ["--secret-file", str(path)]
    return args


def test_two_rolling_restarts_rotate_the_secret_with_no_failed_task_or_suspicion(
        cluster: Cluster, tmp_path: Path) -> None:
    ports = free_ports(3)
    addrs = [("127.0.0.1", p) for p in ports]
    names = ["r1", "r2", "r3"]
    flags = ["--workers", "1", "--log-level", "info"]

    def start(i: int, secrets: tuple[bytes, ...]) -> MeshProc:
        seeds = [a for j, a in enumerate(addrs) if j != i]
        proc = cluster.start(names[i], ports[i], seeds, FAST,
                             extra=[*flags, *_files(tmp_path, *secrets)])
        proc.secret = secrets[-1]  # the test's own queries seal with a key every node opens
        return proc

    procs = [start(i, (OLD,)) for i in range(3)]
    cluster.wait_converged(procs, timeout=20)
    endpoints = [f"127.0.0.1:{p}" for p in ports]
    client = Client(endpoints, secret=[NEW, OLD])
    work = Submitter(client)
    try:
        for secrets in [(NEW, OLD), (NEW,)]:
            for i in range(3):
                procs[i].signal(15)
                procs[i].wait(15)
                procs[i] = start(i, secrets)
                cluster.wait_converged(procs, timeout=20)
                before = work.done
                wait_until(lambda b=before: work.done > b, 30, "tasks to keep completing")
        assert not work.failures, work.failures[:3]
        assert work.done > 0
        # the mesh speaks only the new secret now: a client holding only it works
        with Client(endpoints, secret=NEW) as fresh:
            assert fresh.submit(inc, 1).result(timeout=30) == 2
    finally:
        work.stop()
        client.close()
    assert not work.failures, work.failures[:3]
    logs = cluster.logs()
    assert " suspect at " not in logs and " dead at " not in logs, logs
