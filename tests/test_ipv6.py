"""A mesh bound to the IPv6 loopback serves a client (real processes)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mesh.addresses import format_address, parse_address
from mesh.client import Client
from tests.procs import FAST, Cluster, api, free_ports, wait_until


def inc(x: int) -> int:
    return x + 1


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_addresses_round_trip_with_ipv6_in_brackets() -> None:
    assert format_address(("::1", 7946)) == "[::1]:7946"
    assert format_address(("127.0.0.1", 7946)) == "127.0.0.1:7946"
    assert parse_address(format_address(("fe80::1", 80))) == ("fe80::1", 80)


@pytest.mark.skipif(not _has_ipv6_loopback(),
                    reason="this machine has no IPv6 loopback: cannot bind to [::1]")
def test_a_two_node_mesh_on_ipv6_loopback_runs_a_clients_tasks(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path)
    try:
        first, second = free_ports(2)
        flags = ["--workers", "1", "--log-level", "warning"]
        a = cluster.start("v1", first, [], FAST, flags, host="::1")
        b = cluster.start("v2", second, [("::1", first)], FAST, flags, host="::1")
        cluster.wait_converged([a, b], 15)
        wait_until(lambda: all(api(p.addr, "/v1/exec/stats") for p in (a, b)), 15,
                   "both nodes to run their exec service")
        assert a.bind == f"[::1]:{first}"
        with Client([a.bind]) as client:
            futs = client.map(inc, range(50), pure=False)
            assert client.gather(futs, timeout=30) == list(range(1, 51))
            # The node tells the client where the members are, in brackets.
            assert sorted(client.addresses) == sorted([a.bind, b.bind])
    finally:
        cluster.close()
