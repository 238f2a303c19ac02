"""Bound channels: per-connection keys from the handshake, a counter as the
nonce. Driven directly (ciphers, and channels over in-memory pipes): a frame
opens on one connection, at one position, once; every refusal names its
reason and ends the channel."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.errors import WireError
from mesh.runtime import ChannelClosed
from mesh.wire import (
    CHANNEL_CHUNK_OVERHEAD,
    CHANNEL_OVERHEAD,
    ChannelCipher,
    Codec,
    KeyRing,
    SealedChunk,
)
from mesh.wire._transport import BoundChannel
from tests.test_wire_frame import reason

RING = KeyRing([b"new", b"old"])
KID = RING.key_ids[0]


def connection(nonces: tuple[bytes, bytes] = (b"c" * 16, b"s" * 16), *, ring: KeyRing = RING,
               kid: bytes = KID, max_size: int = 1 << 20) -> tuple[ChannelCipher, ChannelCipher]:
    """The client's and the server's end of one connection, keyed as
    :class:`~mesh.wire._transport.SecureRuntime` keys them."""
    up, down = ring.connection_keys(kid, *nonces)
    return ChannelCipher(kid, up, down, max_size), ChannelCipher(kid, down, up, max_size)


def test_frames_open_in_order_both_ways_and_bodies_are_encrypted() -> None:
    client, server = connection()
    frames = [client.seal(b"submit MARKER-%d" % i) for i in range(3)]
    assert all(b"MARKER" not in f for f in frames)
    assert len(frames[0]) == CHANNEL_OVERHEAD + len(b"submit MARKER-0")
    assert [server.open(f) for f in frames] == [b"submit MARKER-%d" % i for i in range(3)]
    # the other direction has its own key and its own counter
    back = server.seal(b"done")
    assert client.open(back) == b"done"
    _, fresh = connection()
    reflected = fresh.seal(b"done")  # counter 1, due at its own sender too
    assert reason(fresh.open, reflected) == "binding"  # a frame sent back at its sender


def test_a_frame_replayed_on_its_connection_is_a_replay() -> None:
    client, server = connection()
    first, second = client.seal(b"a"), client.seal(b"b")
    assert server.open(first) == b"a"
    assert reason(server.open, first) == "replay"
    assert server.open(second) == b"b"
    assert reason(server.open, second) == "replay"
    assert reason(server.open, first) == "replay"


def test_a_frame_moved_to_another_connection_does_not_open() -> None:
    client1, server1 = connection((b"c" * 16, b"s" * 16))
    _, server2 = connection((b"C" * 16, b"s" * 16))  # another client nonce
    _, server3 = connection((b"c" * 16, b"S" * 16))  # another server nonce
    frame = client1.seal(b"submit")
    # the same counter (1) is due on every fresh connection: only the key differs
    assert reason(server2.open, frame) == "binding"
    assert reason(server3.open, frame) == "binding"
    assert server1.open(frame) == b"submit"


def test_a_skipped_counter_ends_the_order_no_gap_is_accepted() -> None:
    client, server = connection()
    client.seal(b"lost on the way")
    later = client.seal(b"later")
    assert reason(server.open, later) == "binding"  # counter 2 where 1 was due


def test_tampered_truncated_and_foreign_frames_are_named() -> None:
    client, server = connection()
    frame = bytearray(client.seal(b"x" * 40))
    frame[-1] ^= 1
    assert reason(server.open, bytes(frame)) == "binding"
    frame = bytearray(client.seal(b"y"))
    frame[9] ^= 1  # the counter is authenticated (it is the nonce and in the AAD)
    assert reason(server.open, bytes(frame)) in ("binding", "replay")
    assert reason(server.open, client.seal(b"z")[:CHANNEL_OVERHEAD - 1]) == "truncated"
    # a version-2 frame (the codec's, as an old peer sends) is refused by version
    assert reason(server.open, Codec(b"new", 1 << 20).seal([1])) == "version"
    # a channel frame of another key id, purpose or magic
    assert reason(server.open, ChannelCipher(
        KeyRing(b"other").key_ids[0], b"k" * 32, b"k" * 32, 1 << 20).seal(b"q")) == "unknown_key"
    fresh = bytearray(connection()[0].seal(b"q"))
    fresh[3] = 9
    assert reason(connection()[1].open, bytes(fresh)) == "purpose"
    assert reason(server.open, b"\x93\x01\x02\x03" + bytes(40)) == "malformed"
    big = ChannelCipher(KID, b"u" * 32, b"d" * 32, 100)
    assert reason(big.seal, bytes(100)) == "oversized"


def test_every_secret_of_the_ring_keys_a_connection() -> None:
    # a connection speaks the secret its handshake token used: here the second
    old_only = KeyRing(b"old")
    kid = old_only.key_ids[0]
    assert kid == RING.key_ids[1]
    up, down = old_only.connection_keys(kid, b"c" * 16, b"s" * 16)
    client = ChannelCipher(kid, up, down, 1 << 20)
    _, server = connection(kid=kid)  # the rotating node's ring, keyed by the old secret
    assert server.open(client.seal(b"hello")) == b"hello"
    # keys derive from the secret: the same nonces under another secret differ
    assert RING.connection_keys(KID, b"c" * 16, b"s" * 16) != (up, down)


def test_chunks_share_the_counter_and_open_off_the_loop() -> None:
    client, server = connection()
    data = bytes(range(256)) * 100
    frames = [client.seal(b"offer"), client.seal_chunk(b"stream01", 0, [data[:9000]]),
              client.seal_chunk(b"stream01", 1, [data[9000:12000], data[12000:]]),
              client.seal(b"after")]
    assert len(frames[1]) == CHANNEL_CHUNK_OVERHEAD + 9000
    assert server.open(frames[0]) == b"offer"
    first = server.open(bytes(frames[1]))
    second = server.open(bytes(frames[2]))
    assert isinstance(first, SealedChunk) and isinstance(second, SealedChunk)
    assert (first.stream, first.index, second.index) == (b"stream01", 0, 1)
    assert first.open() + second.open() == data
    assert server.open(frames[3]) == b"after"
    assert reason(server.open, bytes(frames[2])) == "replay"


def test_a_chunk_moved_to_another_connection_fails_when_opened() -> None:
    client, _ = connection()
    _, server2 = connection((b"C" * 16, b"S" * 16))
    chunk = server2.open(bytes(client.seal_chunk(b"stream01", 0, [b"data" * 100])))
    assert isinstance(chunk, SealedChunk)
    assert reason(chunk.open) == "binding"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["msg", "chunk"]), st.binary(max_size=64)),
                min_size=1, max_size=20),
       st.lists(st.integers(min_value=0, max_value=19), max_size=30))
def test_a_receiver_takes_exactly_the_senders_order(sent: list[tuple[str, bytes]],
                                                    deliveries: list[int]) -> None:
    """Whatever an attacker delivers (any frames of the stream, repeated,
    dropped, reordered), the receiver accepts exactly a prefix of the sent
    sequence, each frame once, and refuses the rest by a named reason."""
    client, server = connection()
    frames = [client.seal(b) if kind == "msg" else bytes(client.seal_chunk(b"s" * 8, i, [b]))
              for i, (kind, b) in enumerate(sent)]
    accepted: list[int] = []
    for i in deliveries:
        if i >= len(frames):
            continue
        try:
            got = server.open(frames[i])
        except WireError as exc:
            assert exc.reason in ("replay", "binding")
            assert i != len(accepted)
            continue
        body = got.open() if isinstance(got, SealedChunk) else got
        assert body == sent[i][1]
        accepted.append(i)
    assert accepted == list(range(len(accepted)))


class Pipe:
    """One end of an in-memory channel."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.peer: Pipe | None = None
        self.closed = False

    async def send(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer.queue.put_nowait(bytes(data))

    async def recv(self) -> bytes:
        if self.closed:
            raise ChannelClosed("closed")
        return await self.queue.get()

    async def close(self) -> None:
        self.closed = True


def _bound(nonces: tuple[bytes, bytes], drops: list[str]
           ) -> tuple[BoundChannel, BoundChannel, Pipe, Pipe]:
    a, b = Pipe(), Pipe()
    a.peer, b.peer = b, a
    client, server = connection(nonces)
    return BoundChannel(a, client, drops.append), BoundChannel(b, server, drops.append), a, b


def test_a_bound_frame_replayed_or_moved_is_counted_and_closes_the_channel() -> None:
    async def main() -> None:
        drops: list[str] = []
        c1, s1, _, raw1 = _bound((b"c" * 16, b"s" * 16), drops)
        _, s2, _, raw2 = _bound((b"C" * 16, b"S" * 16), drops)
        await c1.send(b"submit")
        wire = await raw1.queue.get()  # recorded on connection 1
        raw1.queue.put_nowait(wire)
        assert await s1.recv() == b"submit"
        raw2.queue.put_nowait(wire)  # moved into connection 2
        with pytest.raises(ChannelClosed):
            await s2.recv()
        raw1.queue.put_nowait(wire)  # or again into connection 1
        with pytest.raises(ChannelClosed):
            await s1.recv()
        assert drops == ["binding", "replay"]
        with pytest.raises(ChannelClosed):
            await s1.recv()  # the channel is closed for good

    asyncio.run(main())


def test_concurrent_senders_are_sealed_in_the_order_they_reach_the_channel() -> None:
    async def main() -> None:
        drops: list[str] = []
        client, server, _, _ = _bound((b"c" * 16, b"s" * 16), drops)
        rng = random.Random(7)
        bodies = [b"%d" % i for i in range(200)]

        async def sender(part: list[bytes]) -> None:
            for body in part:
                await client.send(body)
                if rng.random() < 0.3:
                    await asyncio.sleep(0)
        await asyncio.gather(sender(bodies[::2]), sender(bodies[1::2]))
        got = [await server.recv() for _ in bodies]
        assert sorted(got) == sorted(bodies) and drops == []

    asyncio.run(main())
