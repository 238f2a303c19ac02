"""The transfer driver without sockets: offers, credits and sealed chunk
frames between :class:`mesh.store._channel.Outbound` senders and an
:class:`mesh.store._fetch.Inbound` fetch table, on a fake runtime that runs
blocking work inline."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from typing import Any

import numpy as np

from mesh.metrics import Metrics
from mesh.protocol import payload as P
from mesh.protocol.messages import Grant, ProtocolViolation, Store, decode_peer
from mesh.store import MemorySink, Value, dumps, loads
from mesh.store._channel import CANCEL, CREDIT, Offers, Outbound
from mesh.store._fetch import Inbound
from mesh.wire import ChannelCipher

CHUNK = 1 << 16


class _Runtime:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def token_bytes(self, n: int) -> bytes:
        return os.urandom(n)

    async def run_blocking(self, fn: Any, *args: Any) -> Any:
        return fn(*args)


class _Net:
    """Senders by source name, an inbound table, and what went where."""

    def __init__(self, have: dict[str, Value] | None = None) -> None:
        self.rt = _Runtime()
        # the two ends of one bound channel (keys as a handshake would give)
        self.tx = ChannelCipher(b"kid0", b"u" * 32, b"d" * 32, 1 << 24)
        self.rx = ChannelCipher(b"kid0", b"d" * 32, b"u" * 32, 1 << 24)
        self.outs: dict[str, Outbound] = {}
        self.offers = {src: Offers(self.rt, chunk=CHUNK, window=2) for src in ("a", "b")}
        self.offers["b"]._next += 1 << 16  # tids are drawn at random on real nodes
        self.control: dict[str, list] = {"a": [], "b": []}
        self.delivered: list[tuple[str, Any]] = []
        self.landed: list[str] = []
        self.chunks_sent: dict[str, int] = {"a": 0, "b": 0}
        held = have or {}
        self.inbound = Inbound(
            self.rt, decode=decode_peer, send=lambda s, m: self.control[s].append(m),
            deliver=lambda s, m: self.delivered.append((s, m)),
            make_sink=lambda: (MemorySink, []), have=held.get,
            landed=self._landed, window=2, stall_after=5.0, metrics=Metrics())

    def _landed(self, key: str, value: Value) -> Value:
        self.landed.append(key)
        return value

    async def offer(self, src: str, msg: Any) -> None:
        out = self.outs.setdefault(src, Outbound())
        raw = self.offers[src].offer(msg, out)
        await self.inbound.on_offer(src, raw)

    async def pump(self, src: str, limit: int | None = None) -> None:
        """Carry control messages to ``src``'s senders and its chunks back."""
        out = self.outs[src]
        sent = 0
        while limit is None or sent < limit:
            for raw in self.control[src]:
                if raw[0] in (CREDIT, CANCEL):
                    out.control(raw)
            self.control[src] = []
            chunk = out.next_chunk()
            if chunk is None:
                return
            frame = self.tx.seal_chunk(chunk.tid.to_bytes(8, "big"), chunk.seq, chunk.parts)
            await self.inbound.on_chunk(src, self.rx.open(bytes(frame)))
            sent += 1
            self.chunks_sent[src] += 1


def _value(n: int = 300_000) -> tuple[np.ndarray, Value]:
    arr = np.arange(n, dtype=np.float64)
    header, buffers = dumps(arr)
    return arr, Value.of(header, buffers)


def _store(key: str, value: Value | bytes) -> Store:
    return Store(key, P.OK_VALUE, value, ["a", "b"], [], "a", True)


def test_a_value_arrives_whole_and_its_message_only_then() -> None:
    async def main() -> None:
        net = _Net()
        arr, value = _value()
        await net.offer("a", _store("k", value))
        assert net.delivered == []  # nothing until every chunk is in
        await net.pump("a")
        [(src, msg)] = net.delivered
        assert src == "a" and type(msg) is Store and msg.key == "k"
        assert np.array_equal(loads(msg.payload.header, msg.payload.buffers), arr)
        assert net.landed == ["k"] and not net.inbound.fetches
    asyncio.run(main())


def test_a_partly_received_value_is_never_delivered() -> None:
    async def main() -> None:
        net = _Net()
        _, value = _value()
        await net.offer("a", _store("k", value))
        await net.pump("a", limit=3)
        assert net.delivered == [] and net.landed == []
        assert net.inbound.wanted("k")
    asyncio.run(main())


def test_a_second_offer_of_a_key_joins_the_first_fetch() -> None:
    async def main() -> None:
        net = _Net()
        arr, value = _value()
        await net.offer("a", _store("k", value))
        spec = [b"f", 0, b"", ["k"], 0, 1, []]
        await net.offer("b", Grant("t", spec, [], {"k": [P.OK_VALUE, value]}))
        assert len(net.inbound.fetches) == 1
        await net.pump("a")
        assert net.chunks_sent["b"] == 0  # fetched once
        assert [m.key for _, m in net.delivered] == ["k", "t"]
        grant = net.delivered[1][1]
        got = grant.depvals["k"][1]
        assert np.array_equal(loads(got.header, got.buffers), arr)
        assert [m[0] for m in net.control["b"]] == [CANCEL]  # the alternate is let go
    asyncio.run(main())


def test_a_dead_source_is_resumed_from_another_replica_keeping_the_chunks_received() -> None:
    async def main() -> None:
        net = _Net()
        arr, value = _value()
        value = replace(value, ident=b"i" * 16)  # replicas offer the ident it came with
        nchunks = -(-value.nbytes // CHUNK)
        await net.offer("a", _store("k", value))
        await net.offer("b", _store("k", value))
        await net.pump("a", limit=4)
        net.inbound.source_gone("a")
        for _ in range(10):  # the switch runs as a task
            await asyncio.sleep(0)
        await net.pump("b")
        assert net.chunks_sent["a"] == 4 and net.chunks_sent["b"] == nchunks - 4
        assert len(net.delivered) == 2
        for _, msg in net.delivered:
            assert np.array_equal(loads(msg.payload.header, msg.payload.buffers), arr)
    asyncio.run(main())


def test_a_value_computed_again_restarts_from_its_first_chunk() -> None:
    async def main() -> None:
        net = _Net()
        _, value = _value()
        arr2 = np.arange(300_000, dtype=np.float64) * 2
        other = Value.of(*dumps(arr2))
        await net.offer("a", _store("k", value))
        await net.pump("a", limit=4)
        net.inbound.source_gone("a")  # no alternate: the next offer is taken at once
        await net.offer("b", _store("k", other))
        await net.pump("b")
        got = net.delivered[-1][1].payload
        assert np.array_equal(loads(got.header, got.buffers), arr2)
        assert net.chunks_sent["b"] == -(-other.nbytes // CHUNK)
    asyncio.run(main())


def test_a_value_held_here_is_not_fetched_again() -> None:
    async def main() -> None:
        _arr, value = _value()
        net = _Net(have={"k": value})
        await net.offer("a", _store("k", value))
        assert net.delivered and net.delivered[0][1].payload is value
        assert [m[0] for m in net.control["a"]] == [CANCEL] and not net.inbound.fetches
    asyncio.run(main())


def test_an_offer_larger_than_this_side_can_hold_closes_the_channel() -> None:
    async def main() -> None:
        net = _Net()
        net.inbound.max_value = 1 << 20
        _, value = _value()
        raw = net.offers["a"].offer(_store("k", value), Outbound())
        try:
            await net.inbound.on_offer("a", raw)
        except ProtocolViolation as exc:
            assert "more than this side can hold" in str(exc)
        else:
            raise AssertionError("a 2.4 MB offer passed a 1 MiB bound")
        assert not net.inbound.fetches
    asyncio.run(main())


def test_an_altered_chunk_decrypted_in_place_leaves_nothing_and_ends_the_channel() -> None:
    """The chunk due next is decrypted straight into the sink; one that does
    not authenticate raises (its channel ends), the receiver does not count
    it, and what the failed decryption wrote is zeroed."""
    from mesh.errors import WireError

    async def main() -> None:
        net = _Net()
        _, value = _value()
        await net.offer("a", _store("k", value))
        await net.pump("a", limit=2)
        fetch = net.inbound.fetches["k"]
        due = fetch.receiver.next_seq
        out = net.outs["a"]
        for raw in net.control["a"]:
            out.control(raw)
        net.control["a"] = []
        chunk = out.next_chunk()
        assert chunk is not None and chunk.seq == due
        frame = bytearray(net.tx.seal_chunk(chunk.tid.to_bytes(8, "big"), chunk.seq,
                                            chunk.parts))
        frame[-1] ^= 1  # the tag no longer matches
        into = fetch.receiver.place(chunk.tid, chunk.seq, chunk.nbytes)
        assert into is not None  # it would land in place
        try:
            await net.inbound.on_chunk("a", net.rx.open(bytes(frame)))
        except WireError as exc:
            assert exc.reason == "binding"
        else:
            raise AssertionError("an altered chunk was taken")
        assert fetch.receiver.next_seq == due and not net.delivered
        assert not any(into)
    asyncio.run(main())
