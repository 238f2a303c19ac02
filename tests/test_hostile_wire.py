"""Hostile input at live ``mesh join`` processes: garbage, truncated, oversized,
wrongly signed and malformed datagrams and HTTP bodies. The node must not
crash, must not change its membership, and must count every one in
``/v1/metrics`` as ``wire_dropped_<reason>``."""

from __future__ import annotations

import http.client
import socket

import msgpack
import pytest

from mesh.config import DEFAULT
from mesh.wire import MAGIC, VERSION, Codec
from tests.procs import FAST, Cluster, MeshProc, metrics, wait_until


def _dgram(secret: bytes | None = None) -> Codec:
    return Codec(secret, 10**6, purpose="datagram")


def _tampered() -> bytes:
    frame = bytearray(_dgram().seal([[1, 7, "n1"]]))
    frame[30] ^= 1  # one bit of the ciphertext
    return bytes(frame)


def udp_cases() -> list[tuple[str, bytes]]:
    """Sealed when called: a sealed frame older than the replay window (or
    opened once already) would be dropped as stale (or replay) instead."""
    return [
        ("malformed", b"\x00" * 80),  # garbage: bad magic
        ("malformed", msgpack.packb([[1, 7, "n1" * 60]])),  # a bare msgpack body, unframed
        ("truncated", MAGIC + bytes([VERSION]) + b"\x01" * 10),
        ("oversized", _dgram().seal({"pad": "x" * 3000})),
        ("unknown_key", _dgram(b"not our secret").seal([[1, 7, "n1"]])),
        ("version", MAGIC + bytes([VERSION + 1]) + b"\x00" * 80),
        ("malformed", _dgram().seal_body(b"\x92\x01")),  # truncated msgpack, valid tag
        ("malformed", _dgram().seal({"not": "a compound message"})),
        ("malformed", _dgram().seal([[5, "inc", "n9", "h", 1, {}]])),  # alive, bad types
        # an attempt to kill a member, sealed with the wrong key
        ("unknown_key", _dgram(b"evil").seal([[7, 99, "n2", "n2"]])),
        ("purpose", Codec(None, 10**6).seal([[1, 7, "n1"]])),  # an HTTP frame as a datagram
        ("unauthenticated", _tampered()),
    ]


HTTP_PATHS = ["/v1/members", "/v1/metrics", "/v1/gossip/pushpull", "/v1/ring", "/v1/exec/run"]


def _post(proc: MeshProc, path: str, body: bytes) -> int | None:
    """POST raw bytes; the status, or None if the node cut the connection."""
    conn = http.client.HTTPConnection(*proc.addr, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/octet-stream"})
        return conn.getresponse().status
    except (ConnectionResetError, BrokenPipeError):
        return None
    finally:
        conn.close()


def _dropped(counters: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counters.items() if k.startswith("wire_dropped_")}


def _snapshot(procs: list[MeshProc]) -> list[dict[str, tuple[str, str]]]:
    """Who each node knows, where, and in which status. (Incarnations are left
    out: a service may still be publishing its metadata, which raises them.)"""
    return [
        {name: (m["address"], m["status"]) for name, m in p.members().items()} for p in procs
    ]


@pytest.fixture
def pair(cluster: Cluster) -> list[MeshProc]:
    procs = cluster.start_many(2, config=FAST)
    cluster.wait_converged(procs, timeout=10)
    return procs


def test_hostile_datagrams_are_dropped_counted_and_change_nothing(pair: list[MeshProc]) -> None:
    target = pair[0]
    before = _snapshot(pair)
    base = _dropped(metrics(target.addr))
    expected: dict[str, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for reason, data in udp_cases():
            s.sendto(data, target.addr)
            expected[reason] = expected.get(reason, 0) + 1

    def counted() -> bool:
        now = _dropped(metrics(target.addr))
        return all(now.get(f"wire_dropped_{r}", 0) - base.get(f"wire_dropped_{r}", 0) >= n
                   for r, n in expected.items())

    wait_until(counted, 5, f"the node to count {expected}")
    assert all(p.running() for p in pair)
    assert _snapshot(pair) == before
    # and it still gossips: a probe round later, both still see each other alive
    wait_until(lambda: metrics(target.addr).get("gossip_datagrams_sent", 0) > 0, 5, "gossip")
    assert all(set(p.statuses().values()) == {"alive"} for p in pair)


def test_hostile_http_bodies_are_refused_counted_and_change_nothing(pair: list[MeshProc]) -> None:
    target = pair[0]
    before = _snapshot(pair)

    def cases() -> list[tuple[str, bytes, int]]:  # sealed afresh: a frame opens only once
        return [
            ("malformed", b"garbage" * 10, 400),
            ("truncated", MAGIC + bytes([VERSION]) + b"\x00" * 5, 400),
            ("unknown_key", Codec(b"wrong", 10**6).seal({"state": []}), 401),
            ("version", MAGIC + bytes([VERSION + 1]) + b"\x00" * 80, 400),
            ("malformed", Codec(None, 10**6).seal_body(b"\xc1\xc1"), 400),
            ("truncated", b"", 400),
        ]

    for path in HTTP_PATHS:
        base = _dropped(metrics(target.addr))
        for _, body, status in cases():
            assert _post(target, path, body) == status, path
        # a body larger than a first frame, without a token: refused before it is read
        assert _post(target, path, b"\x00" * (DEFAULT.max_http_body + 1)) in (401, None)
        now = _dropped(metrics(target.addr))
        expected = {"malformed": 2, "truncated": 2, "unknown_key": 1, "version": 1,
                    "no_token": 1}
        for reason, n in expected.items():
            key = f"wire_dropped_{reason}"
            assert now.get(key, 0) - base.get(key, 0) == n, (path, key, now, base)
    assert target.running()
    assert _snapshot(pair) == before


def test_wellsigned_but_malformed_pushpull_state_is_refused_and_counted(
    pair: list[MeshProc],
) -> None:
    target = pair[0]
    before = _snapshot(pair)
    base = metrics(target.addr).get("wire_dropped_malformed", 0)
    codec = Codec(None, DEFAULT.max_http_body)
    bad_states = [
        {"no": "state"},
        {"state": "not a list"},
        {"state": [["n9", "127.0.0.1", "port", 0, 0, {}]]},
        {"state": [["n9", "127.0.0.1", 1, 0, 9, {}]]},  # unknown status
        [1, 2, 3],
    ]
    for state in bad_states:
        assert _post(target, "/v1/gossip/pushpull", codec.seal(state)) == 400
    assert metrics(target.addr)["wire_dropped_malformed"] - base == len(bad_states)
    assert _snapshot(pair) == before
    assert target.running()
