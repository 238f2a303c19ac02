"""A node sends its member table in slices, and a merge that adds many
members tells the process (``mesh join`` freezes the heap then)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import msgpack

from mesh.config import DEFAULT
from mesh.node import Node
from mesh.realtime import RealRuntime, run
from mesh.wire import Codec

SECRET = b"gossip-heap-test-secret-01234567"


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _table(n: int) -> list[list[Any]]:
    return [[f"peer{i:05d}", "127.0.0.2", 1024 + i, 1, 0, {"workers": 1}] for i in range(n)]


async def _merge(n: int, **cfg: Any) -> tuple[int, Node, list[Any]]:
    rt = RealRuntime()
    node = Node(rt, DEFAULT.with_(**cfg), "me", ("127.0.0.1", _port()), secret=SECRET)
    await node.start()
    bulk: list[int] = []
    node.driver.on_bulk_join = lambda: bulk.append(len(node.membership.members()))
    try:
        status, reply = await node.driver.handle_push_pull({"state": _table(n)})
        assert status == 200
        while node.membership.merges:
            await asyncio.sleep(0)
        opened = Codec([SECRET], DEFAULT.max_http_body).open(reply)
        return len(bulk), node, opened["state"]
    finally:
        await node.stop()
        await rt.close()


def test_a_merge_adding_at_least_heap_freeze_joins_members_calls_on_bulk_join_once() -> None:
    calls, node, reply = run(_merge(60, heap_freeze_joins=50, push_pull_merge_slice=16))
    assert calls == 1
    assert len(node.membership.members()) == 61
    assert [row[0] for row in reply] == ["me"]  # the reply is our table before theirs


def test_a_smaller_merge_does_not() -> None:
    calls, node, _ = run(_merge(40, heap_freeze_joins=50, push_pull_merge_slice=16))
    assert calls == 0 and len(node.membership.members()) == 41


def test_a_table_larger_than_a_pack_slice_is_sent_whole() -> None:
    async def main() -> tuple[bytes, list]:
        rt = RealRuntime()
        node = Node(rt, DEFAULT.with_(table_pack_slice=7, push_pull_merge_slice=8),
                    "me", ("127.0.0.1", _port()), secret=SECRET)
        await node.start()
        try:
            await node.driver.handle_push_pull({"state": _table(30)})
            while node.membership.merges:
                await asyncio.sleep(0)
            rows = node.membership.local_state()
            sealed = await node.driver.seal_table({"join": False}, "state", rows)
            return sealed, rows
        finally:
            await node.stop()
            await rt.close()

    sealed, rows = run(main())
    opened = Codec([SECRET], DEFAULT.max_http_body).open(sealed)
    assert opened == msgpack.unpackb(msgpack.packb({"join": False, "state": rows}))
    assert len(opened["state"]) == 31
