"""What moving a large value costs, in CPU time per MB on each side, beside
what this machine does with the same bytes over a bare loopback socket.

``python -m bench.transfer_cpu`` prints one JSON line::

    {"mb", "node_to_node": {"mb_per_s", "sender_ms_per_mb", "receiver_ms_per_mb",
                            "sender_faults_per_mb", "receiver_faults_per_mb"},
     "to_client": {"mb_per_s", "node_ms_per_mb", "client_ms_per_mb", "client_faults_per_mb"},
     "loopback": {"mb_per_s", "ms_per_mb"},
     "landing": {"file_ms_per_mb", "memory_ms_per_mb"}}

A local mesh of 2 nodes (``--replicas 1``) makes one ``--mb`` (256) MiB
array on one node; a task restricted to the other node (``workers=``) takes
it as input (``node_to_node``); then ``result()`` brings it to the client
(``to_client``). CPU times are ``utime + stime`` from ``/proc`` for each
node with its workers, and ``getrusage`` for the client; ``*_faults_per_mb``
are minor page faults per MiB (256 is one per 4 KiB page: one fresh buffer
the size of the value). On a shared,
loaded machine they move less than wall-clock rates do. ``loopback`` sends
the same number of bytes through a socket pair between two threads, 4 MiB
at a time into a preallocated buffer: the floor of a kernel copy each way,
with no encryption, hashing or framing. ``landing`` is the other floor of a
receiver: writing the same MiB into a new file of the spill directory's file
system (``file_ms_per_mb``, as a receiving node's sink does) and first
touching as much fresh memory (``memory_ms_per_mb``, what a receiver that
keeps the value in memory pays), in this process.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np

from bench.data import _stats, local_mesh, make_big

MIB = 1 << 20


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its descendants."""
    return _proc_sum(pid, lambda parts: (int(parts[11]) + int(parts[12]))
                     / os.sysconf("SC_CLK_TCK"))


def minor_faults(pid: int) -> int:
    """Minor page faults of ``pid`` and its descendants: each first touch of
    a fresh page (a new buffer, a new page of a file) is one."""
    return int(_proc_sum(pid, lambda parts: int(parts[7])))


def _proc_sum(pid: int, field: Any) -> float:
    with open(f"/proc/{pid}/stat") as f:
        total = field(f.read().rsplit(")", 1)[1].split())
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                total += sum(_proc_sum(int(c), field) for c in f.read().split())
        except FileNotFoundError:  # a thread or child that just ended
            continue
    return total


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _own_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def landing(mb: int, where: str) -> dict[str, float]:
    """The floor of receiving a value on this machine: CPU ms per MiB to put
    ``mb`` MiB into a new file in ``where`` (reserved, mapped, then written 4
    MiB at a time, as a receiving node's sink does, minus the network and the
    decryption), and to first touch as much fresh anonymous memory (what any
    receiver that keeps the value in memory pays)."""
    chunk = bytes(4 * MIB)
    fd, path = tempfile.mkstemp(dir=where, prefix="mesh-landing-")
    try:
        c0 = own_cpu()
        os.posix_fallocate(fd, 0, mb * MIB)
        with mmap.mmap(fd, mb * MIB) as m:
            for at in range(0, mb * MIB, len(chunk)):
                m[at:at + len(chunk)] = chunk
        file_cpu = own_cpu() - c0
    finally:
        os.close(fd)
        os.unlink(path)
    c0 = own_cpu()
    with mmap.mmap(-1, mb * MIB) as m:
        for at in range(0, mb * MIB, mmap.PAGESIZE):
            m[at] = 1
    anon_cpu = own_cpu() - c0
    return {"file_ms_per_mb": round(1000 * file_cpu / mb, 2),
            "memory_ms_per_mb": round(1000 * anon_cpu / mb, 2)}


def loopback(mb: int) -> dict[str, float]:
    a, b = socket.socketpair()
    chunk = bytes(4 * MIB)
    into = bytearray(4 * MIB)
    total = mb * MIB

    def receive() -> None:
        view, got = memoryview(into), 0
        while got < total:
            got += b.recv_into(view, min(len(into), total - got))

    reader = threading.Thread(target=receive)
    c0, t0 = own_cpu(), time.perf_counter()
    reader.start()
    sent = 0
    while sent < total:
        a.sendall(chunk[:min(len(chunk), total - sent)])
        sent += min(len(chunk), total - sent)
    reader.join()
    wall, cpu = time.perf_counter() - t0, own_cpu() - c0
    a.close()
    b.close()
    return {"mb_per_s": round(mb * 1.048576 / wall, 1), "ms_per_mb": round(1000 * cpu / mb, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer_cpu", description=__doc__)
    parser.add_argument("--mb", type=int, default=256, help="MiB moved")
    args = parser.parse_args(argv)
    from mesh.client import Client

    mb = args.mb
    with local_mesh(2, ["--replicas", "1"]) as (addrs, pids):
        names = [_stats(a)["node"] for a in addrs]
        with Client([addrs[0]]) as client:
            key = next(k for k in (f"bench-cpu-{i}" for i in range(1000))
                       if _stats(addrs[0], key=k)["key"]["pref"][0] == names[0])
            fut = client.submit(make_big, mb * MIB // 8, key=key)
            deadline = time.monotonic() + 600
            while not (_stats(addrs[0], key=key)["key"]["result"] or {}).get("confirmed"):
                if time.monotonic() > deadline:
                    raise RuntimeError("the value was not made within 600 s")
                time.sleep(0.01)
            before = [cpu_seconds(p) for p in pids]
            faults = [minor_faults(p) for p in pids]
            t0 = time.perf_counter()
            assert client.submit(np.size, fut, workers=names[1]).result(600) == mb * MIB // 8
            wall = time.perf_counter() - t0
            mid = [cpu_seconds(p) for p in pids]
            faults = [minor_faults(p) - f for p, f in zip(pids, faults, strict=True)]
            n2n = {"mb_per_s": round(mb * 1.048576 / wall, 1),
                   "sender_ms_per_mb": round(1000 * (mid[0] - before[0]) / mb, 2),
                   "receiver_ms_per_mb": round(1000 * (mid[1] - before[1]) / mb, 2),
                   "sender_faults_per_mb": round(faults[0] / mb),
                   "receiver_faults_per_mb": round(faults[1] / mb)}
            c0, t0, f0 = own_cpu(), time.perf_counter(), _own_faults()
            got = fut.result(600)
            wall, client_cpu = time.perf_counter() - t0, own_cpu() - c0
            client_faults = _own_faults() - f0
            assert got.nbytes == mb * MIB
            after = [cpu_seconds(p) for p in pids]
            to_client = {"mb_per_s": round(mb * 1.048576 / wall, 1),
                         "node_ms_per_mb": round(1000 * (after[0] - mid[0]) / mb, 2),
                         "client_ms_per_mb": round(1000 * client_cpu / mb, 2),
                         "client_faults_per_mb": round(client_faults / mb)}
    print(json.dumps({"mb": mb, "node_to_node": n2n, "to_client": to_client,
                      "loopback": loopback(mb),
                      "landing": landing(mb, tempfile.gettempdir())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
