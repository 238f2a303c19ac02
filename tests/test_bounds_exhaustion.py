"""Unauthenticated exhaustion against a real 3-node mesh on 127.0.0.1: idle
connections, stalled large bodies, websocket upgrades without a token, and a
flood of garbage datagrams. Throughout, the mesh stays converged with no
suspicion, a client's tasks complete, and the target's RSS grows < 50 MB.

Counts and durations are bounded so the test takes ~30 s: 2,000 idle
connections held past the handshake deadline (5 s), 150 stalled 8 MiB
bodies, 24 websockets, 50,000 datagrams."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from pathlib import Path

import pytest

from mesh.client import Client
from tests.procs import Cluster, MeshProc, metrics, wait_until

SECRET = b"exhaustion"


def rss_mb(proc: MeshProc) -> float:
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def inc(x: int) -> int:
    return x + 1


@pytest.fixture
def mesh3(cluster: Cluster) -> list[MeshProc]:
    procs = cluster.start_many(3, secret=SECRET, extra=["--workers", "1"])
    cluster.wait_converged(procs, timeout=20)
    return procs


def _no_suspicion(procs: list[MeshProc]) -> None:
    for p in procs:
        assert p.running(), p.log()
        assert p.statuses() == {q.name: "alive" for q in procs}
        assert " suspect at " not in p.log(), p.log()


def test_unauthenticated_exhaustion_leaves_the_mesh_converged_and_working(
    mesh3: list[MeshProc],
) -> None:
    target = mesh3[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2_200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4_096), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2_200:
        pytest.skip("needs 2,200 file descriptors (ulimit -n)")
    with Client(f"{target.addr[0]}:{target.addr[1]}", secret=SECRET) as client:
        assert client.submit(inc, 0).result(timeout=30) == 1
        rss0 = rss_mb(target)

        # 2,000 idle connections, held past the handshake deadline
        idle = []
        for _ in range(2_000):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(target.addr)
            idle.append(s)
        assert client.submit(inc, 1).result(timeout=30) == 2
        wait_until(lambda: metrics(target.addr, SECRET).get("http_closed_unauthenticated", 0)
                   >= 1, 15, "idle connections to be closed")
        for s in idle:
            s.close()
        _no_suspicion(mesh3)

        # 150 stalled 8 MiB bodies without a token
        stalled = []
        for _ in range(150):
            s = socket.create_connection(target.addr, timeout=5)
            s.sendall(b"POST /v1/gossip/pushpull HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 8388608\r\n\r\n" + b"\0" * 65536)
            stalled.append(s)
        refused = 0
        for s in stalled:
            s.settimeout(5)
            with contextlib.suppress(TimeoutError, ConnectionError):
                refused += s.recv(100).startswith(b"HTTP/1.1 401")
            s.close()
        assert refused >= 140

        # 24 websocket upgrades without a token
        upgrades = 0
        for _ in range(24):
            with socket.create_connection(target.addr, timeout=5) as s:
                s.sendall(b"GET /v1/exec/client HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                upgrades += s.recv(100).startswith(b"HTTP/1.1 101")
        assert upgrades == 0

        # 50,000 garbage datagrams within 10 s
        base = metrics(target.addr, SECRET)
        junk = [os.urandom(1400) for _ in range(16)]
        t0 = time.monotonic()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            for i in range(50_000):
                u.sendto(junk[i % 16], target.addr)
                if i % 5_000 == 4_999:
                    time.sleep(0.05)  # pace the flood a little: loopback drops the excess
        assert time.monotonic() - t0 < 10
        assert client.submit(inc, 2).result(timeout=30) == 3
        now = metrics(target.addr, SECRET)
        dropped = sum(v - base.get(k, 0) for k, v in now.items() if k.startswith("wire_dropped_"))
        assert dropped > 10_000, now

        _no_suspicion(mesh3)
        assert [f.result(timeout=30) for f in client.map(inc, range(50))] == list(range(1, 51))
        grown = rss_mb(target) - rss0
        assert grown < 50, f"RSS grew {grown:.0f} MB"
