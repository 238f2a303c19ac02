"""The intern table: equal values become one object, the table stays bounded."""

from __future__ import annotations

import msgpack

from mesh.gossip import _intern
from mesh.gossip._messages import ALIVE, from_list


def _decoded_alive(name: str) -> list:
    # a fresh decode, as each node does for each datagram
    return msgpack.unpackb(msgpack.packb([ALIVE, 1, name, "10.0.0.1", 7946, {"zone": 2}]))


def test_two_decodes_of_one_alive_share_name_address_and_metadata() -> None:
    a, b = from_list(_decoded_alive("n1")), from_list(_decoded_alive("n1"))
    assert a == b
    assert a.node is b.node and a.addr is b.addr and a.meta is b.meta


def test_metadata_that_cannot_be_hashed_is_kept_as_it_came() -> None:
    meta = {"tags": ["a", "b"]}
    assert _intern.intern_meta(meta) is meta


def test_the_table_starts_over_at_its_bound(monkeypatch) -> None:
    monkeypatch.setattr(_intern, "MAX_VALUES", 4)
    monkeypatch.setattr(_intern, "_addrs", {})
    for port in range(1, 11):
        assert _intern.intern_addr(("h", port)) == ("h", port)
        assert len(_intern._addrs) <= 4
