"""The cluster secret with real processes: a non-loopback bind needs one,
nodes sharing one join, and a node with another secret cannot join them."""

from __future__ import annotations

import json
import socket
import urllib.error

import pytest

from tests.procs import FAST, Cluster, api, free_ports, run_cli, wait_until

S1 = b"correct horse battery staple"
S2 = b"a different secret"


def _non_loopback_ipv4() -> str | None:
    """This host's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
        except OSError:
            return None
        ip = s.getsockname()[0]
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


@pytest.mark.parametrize("bind", ["10.1.2.3:7946", "0.0.0.0:7946", "[fd00::5]:7946"])
def test_non_loopback_bind_without_secret_exits_2_saying_what_to_do(bind: str) -> None:
    out = run_cli("join", "--bind", bind, "--name", "x", timeout=20)
    assert out.returncode == 2
    assert "without a cluster secret" in out.stderr
    assert "--secret-file" in out.stderr and "MESH_SECRET" in out.stderr
    assert "127.0.0.1" in out.stderr


def test_wildcard_bind_with_secret_is_refused_as_unreachable_for_peers(tmp_path) -> None:
    secret = tmp_path / "s"
    secret.write_bytes(S1)
    out = run_cli("join", "--bind", "0.0.0.0:7946", "--secret-file", str(secret))
    assert out.returncode == 2
    assert "wildcard" in out.stderr and "--advertise" in out.stderr


def test_a_wildcard_advertise_address_is_refused(tmp_path) -> None:
    secret = tmp_path / "s"
    secret.write_bytes(S1)
    out = run_cli("join", "--bind", "0.0.0.0:7946", "--advertise", "0.0.0.0:7946",
                  "--secret-file", str(secret))
    assert out.returncode == 2
    assert "--advertise 0.0.0.0:7946 is a wildcard address" in out.stderr


def test_a_wildcard_bind_joins_peers_at_its_advertised_address(cluster: Cluster) -> None:
    port = free_ports(1)[0]
    wide = cluster.start("wide", port, config=FAST, secret=S1, host="0.0.0.0",
                         extra=["--advertise", f"127.0.0.1:{port}"])
    peer = cluster.start("peer", seeds=[("127.0.0.1", port)], config=FAST, secret=S1)
    cluster.wait_converged([wide, peer], timeout=10)
    rows = {m["name"]: m for m in api(peer.addr, "/v1/members", secret=S1)["members"]}
    assert rows["wide"]["address"] == f"127.0.0.1:{port}"
    assert "reachable at 127.0.0.1:" in wide.log()


def test_nodes_sharing_a_secret_join_and_a_node_with_another_secret_cannot(
    cluster: Cluster,
) -> None:
    a, b = cluster.start_many(2, config=FAST, secret=S1)
    cluster.wait_converged([a, b], timeout=10)
    intruder = cluster.start("intruder", seeds=[a.addr, b.addr], config=FAST, secret=S2)
    wait_until(lambda: intruder.log().count("seeds not reachable yet") >= 3, 10, "retries")
    assert intruder.statuses() == {"intruder": "alive"}
    for p in (a, b):
        assert set(p.statuses()) == {a.name, b.name}
    wait_until(
        lambda: api(a.addr, "/v1/metrics", secret=S1).get("wire_dropped_unknown_key", 0) > 0
        or api(b.addr, "/v1/metrics", secret=S1).get("wire_dropped_unknown_key", 0) > 0,
        5,
        "the refused push-pulls to be counted",
    )
    # the API needs the secret too
    with pytest.raises(urllib.error.HTTPError) as err:
        api(a.addr, "/v1/members")
    assert err.value.code == 401
    denied = run_cli("members", "--address", a.bind)
    assert denied.returncode == 1
    assert "secret" in denied.stderr


def test_non_loopback_bind_with_a_secret_runs_and_serves_peers_that_share_it(
    cluster: Cluster, tmp_path
) -> None:
    ip = _non_loopback_ipv4()
    if ip is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    p1, p2 = free_ports(2)
    first = cluster.start("outer1", p1, config=FAST, secret=S1, host=ip)
    second = cluster.start("outer2", p2, seeds=[(ip, p1)], config=FAST, secret=S1, host=ip)
    assert first.addr == (ip, p1) and second.addr == (ip, p2)
    cluster.wait_converged([first, second], timeout=10)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(S1 + b"\n")
    out = run_cli("members", "--address", f"{ip}:{p1}", "--json", "--secret-file", str(secret_file))
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert {(r["name"], r["address"], r["status"]) for r in rows} == {
        ("outer1", f"{ip}:{p1}", "alive"),
        ("outer2", f"{ip}:{p2}", "alive"),
    }
    env_out = run_cli("members", "--address", f"{ip}:{p1}", env={"MESH_SECRET": S1.decode()})
    assert env_out.returncode == 0, env_out.stderr
