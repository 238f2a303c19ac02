"""Captured frames replayed later change nothing, and nothing in clear crosses
the wire: real ``mesh join`` processes behind a TCP and UDP proxy on
127.0.0.1 that records every byte (written here, in the test)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh.client import Client
from tests.procs import FAST, Cluster, MeshProc, free_ports, metrics, wait_until

SECRET = b"replay-test-secret"


class Proxy:
    """Forwards TCP connections and UDP datagrams arriving at ``port`` to
    ``target`` and records everything: ``tcp`` holds one (client-to-server,
    server-to-client) pair of byte strings per connection, ``udp`` every
    datagram forwarded."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.addr = ("127.0.0.1", port)
        self.target = target
        self.tcp: list[tuple[bytearray, bytearray]] = []
        self.udp: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._conn, *self.addr)
        proxy = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):  # type: ignore[no-untyped-def]
                self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

            def datagram_received(self, data, addr):  # type: ignore[no-untyped-def]
                proxy.udp.append(data)
                self.out.sendto(data, proxy.target)

        self._udp, _ = await self._loop.create_datagram_endpoint(Udp, local_addr=self.addr)

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up, down = bytearray(), bytearray()
        self.tcp.append((up, down))
        try:
            r2, w2 = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       log: bytearray) -> None:
            try:
                while data := await src.read(65536):
                    log += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, w2, up), pipe(r2, writer, down))

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            self._udp.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)


@pytest.fixture
def proxied(cluster: Cluster) -> Iterator[tuple[list[MeshProc], Proxy]]:
    """Three nodes; n3 advertises the proxy's address, so peers' datagrams
    and requests to it pass the proxy."""
    ports = free_ports(4)
    n1 = cluster.start("n1", ports[0], [("127.0.0.1", ports[2])], FAST, secret=SECRET,
                       extra=["--workers", "1"])
    n2 = cluster.start("n2", ports[1], [n1], FAST, secret=SECRET, extra=["--workers", "1"])
    proxy = Proxy(ports[3], ("127.0.0.1", ports[2]))
    n3 = cluster.start("n3", ports[2], [n1], FAST, secret=SECRET,
                       extra=["--workers", "1", "--advertise", f"127.0.0.1:{ports[3]}"])
    try:
        cluster.wait_converged([n1, n2, n3], timeout=20)
        yield [n1, n2, n3], proxy
    finally:
        proxy.close()


def _raw_send(addr: tuple[str, int], data: bytes) -> bytes:
    """Send a recorded client-to-server byte stream on a new connection;
    return whatever comes back within a second."""
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(data)
        s.settimeout(1.0)
        got = bytearray()
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionError):
                break
            if not chunk:
                break
            got += chunk
        return bytes(got)


def _count_runs(path: str) -> int:
    return Path(path).stat().st_size if Path(path).exists() else 0


def mark_run(path: str, marker: str) -> str:
    with open(path, "a") as f:
        f.write("x")
    return marker[::-1] + "|" + marker


def test_replayed_client_streams_and_gossip_datagrams_change_nothing(
    proxied: tuple[list[MeshProc], Proxy], tmp_path: Path,
) -> None:
    (n1, n2, n3), proxy = proxied
    runs = str(tmp_path / "runs")
    marker = "MARKER-7f3a9c-in-the-argument"
    with Client(f"{proxy.addr[0]}:{proxy.addr[1]}", secret=SECRET) as client:
        result = client.submit(mark_run, runs, marker, pure=False).result(timeout=30)
    assert result == marker[::-1] + "|" + marker
    assert _count_runs(runs) == 1
    # nothing in clear: neither the argument nor the result, in either direction
    wire = b"".join(bytes(up) + bytes(down) for up, down in proxy.tcp) + b"".join(proxy.udp)
    assert proxy.tcp and proxy.udp
    assert marker.encode() not in wire and marker[::-1].encode() not in wire
    assert b"mark_run" not in wire and b"MARKER" not in wire

    # n2 leaves; n3 hears of it (its alive and leave datagrams are recorded)
    n2.signal(2)
    n2.wait(10)
    wait_until(lambda: n3.statuses().get("n2") == "left", 10, "n3 to see n2 leave")
    before = {p.name: p.statuses() for p in (n1, n3)}
    base = metrics(n3.addr, SECRET)

    # replay every recorded datagram straight at n3, and every client stream
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in proxy.udp:
            s.sendto(data, n3.addr)
    streams = [bytes(up) for up, _ in proxy.tcp if up]
    answers = [_raw_send(n3.addr, data) for data in streams]

    def counted() -> dict[str, int] | None:
        now = metrics(n3.addr, SECRET)
        grown = now.get("wire_dropped_replay", 0) - base.get("wire_dropped_replay", 0)
        return now if grown >= len(proxy.udp) // 2 else None

    after = wait_until(counted, 10, "the replays to be counted")
    # the replayed upgrades and requests were refused before anything ran
    assert all(b"101 Switching Protocols" not in a and b"HTTP/1.1 200" not in a
               for a in answers), answers
    # a task submitted after the replays completes; the replayed one never ran again
    later = str(tmp_path / "later")
    with Client(f"{n3.addr[0]}:{n3.addr[1]}", secret=SECRET) as client:
        client.submit(mark_run, later, "later", pure=False).result(timeout=30)
    assert _count_runs(later) == 1
    assert _count_runs(runs) == 1
    # n3 took every replay, and believes what it believed before them
    assert n3.statuses() == before["n3"]
    assert n3.statuses()["n2"] == "left"
    # n1 got none; while n3 worked through them n1 may have suspected it for a
    # moment (a slow node refutes), so its view must come back, not stay put
    wait_until(lambda: n1.statuses() == before["n1"] or None, 15, "n1's view to settle")
    assert after.get("wire_dropped_replay", 0) > base.get("wire_dropped_replay", 0)
