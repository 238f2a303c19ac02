"""Insider shapes: frames sealed with the cluster's own secret, carrying values
past the bounds (incarnation 2**63-1, workers 1,000 and 2**62, push-pull
tables of 5,000 and 100,000 fake members, 1 MB of metadata per member). A real
``mesh join`` node drops and counts each (``wire_dropped_bounds``) and stays
healthy: no member changes state and it keeps answering quickly."""

from __future__ import annotations

import base64
import socket
import time
import urllib.error
import urllib.request

import pytest

from mesh.config import DEFAULT
from mesh.wire import Codec
from tests.procs import FAST, Cluster, MeshProc, api, metrics, wait_until

SECRET = b"insider"


def _datagram(msgs: list) -> bytes:
    return Codec(SECRET, 10**7, purpose="datagram").seal(msgs)


def _post(proc: MeshProc, path: str, obj: object) -> int:
    """POST ``obj`` sealed with the cluster secret, with an admission token."""
    codec = Codec(SECRET, DEFAULT.max_http_body)
    body = codec.seal(obj)
    token = codec.seal({"k": "request", "p": path, "n": len(body), "t": body[-16:]})
    req = urllib.request.Request(
        f"http://{proc.addr[0]}:{proc.addr[1]}{path}", data=body, method="POST",
        headers={"Content-Type": "application/octet-stream",
                 "X-Mesh-Auth": base64.b64encode(token).decode()})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def pair(cluster: Cluster) -> list[MeshProc]:
    procs = cluster.start_many(2, config=FAST, secret=SECRET, extra=["--workers", "1"])
    cluster.wait_converged(procs, timeout=15)
    return procs


def _healthy(procs: list[MeshProc]) -> None:
    for p in procs:
        assert p.running(), p.log()
        t0 = time.monotonic()
        st = p.statuses()
        assert time.monotonic() - t0 < 1.0
        assert st == {q.name: "alive" for q in procs}, st
        assert set(st) == {"n1", "n2"}


def test_sealed_datagrams_past_the_bounds_are_dropped_and_counted(pair: list[MeshProc]) -> None:
    n1, n2 = pair
    base = metrics(n1.addr, SECRET).get("wire_dropped_bounds", 0)
    host, port = n2.addr
    cases = [
        [[5, 2**63 - 1, "n2", host, port, {"workers": 1}]],  # alive at 2**63-1
        [[6, 2**63 - 1, "n1", "n2"]],  # suspect n1 at 2**63-1: no refutation could follow
        [[7, 2**62 + 1, "n2", "n1"]],  # dead
        [[5, 5, "evil", "127.0.0.1", 9, {"workers": 1000}]],
        [[5, 5, "evil", "127.0.0.1", 9, {"workers": 2**62}]],
        [[5, 5, "evil", "127.0.0.1", 9, {"queue": 2**62}]],
        [[5, 5, "evil", "127.0.0.1", 9, {"workers": 0}]],
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for msgs in cases:
            s.sendto(_datagram(msgs), n1.addr)
    wait_until(lambda: metrics(n1.addr, SECRET).get("wire_dropped_bounds", 0) - base
               >= len(cases), 10, "the bounds drops to be counted")
    _healthy(pair)
    assert "evil" not in n1.statuses()
    assert n1.members()["n2"]["incarnation"] < 2**62


@pytest.mark.parametrize("n", [5_000, 100_000])
def test_push_pull_tables_beyond_max_members_are_refused_whole(
    pair: list[MeshProc], n: int,
) -> None:
    n1, _ = pair
    base = metrics(n1.addr, SECRET).get("wire_dropped_bounds", 0)
    state = [[f"fake{i}", "127.0.0.1", 10_000 + i % 50_000, 1, 0, {}] for i in range(n)]
    t0 = time.monotonic()
    assert _post(n1, "/v1/gossip/pushpull", {"state": state}) == 400
    assert time.monotonic() - t0 < 10
    assert metrics(n1.addr, SECRET)["wire_dropped_bounds"] - base == 1
    _healthy(pair)
    assert len(n1.members()) == 2


def test_a_megabyte_of_metadata_per_member_is_refused_and_members_still_answers(
    pair: list[MeshProc],
) -> None:
    n1, _ = pair
    base = metrics(n1.addr, SECRET).get("wire_dropped_bounds", 0)
    state = [[f"fat{i}", "127.0.0.1", 10_000 + i, 1, 0, {"blob": "x" * 1_000_000}]
             for i in range(3)]
    assert _post(n1, "/v1/gossip/pushpull", {"state": state}) == 400
    assert metrics(n1.addr, SECRET)["wire_dropped_bounds"] - base == 1
    assert len(api(n1.addr, "/v1/members", secret=SECRET)["members"]) == 2
    _healthy(pair)
