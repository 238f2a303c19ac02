"""The frame format, the key ring, replay windows and streams, driven
directly (no sockets): every rejection names its reason. Bound channels:
``tests/test_wire_channel.py``."""

from __future__ import annotations

import random

import pytest

from mesh.errors import WireError
from mesh.wire import CHUNK_OVERHEAD, OVERHEAD, Codec, Identity, KeyRing, ReplayGuard


class Clock:
    """A Source with a wall clock the test moves."""

    def __init__(self, t: float = 1_700_000_000.0, seed: int = 0) -> None:
        self.t = t
        self._rng = random.Random(seed)

    def wall(self) -> float:
        return self.t

    def token_bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)


def guard(window: float = 60.0, skew: float = 120.0, counters: int = 64) -> ReplayGuard:
    return ReplayGuard(window=window, max_skew=skew, counter_window=counters, max_senders=8)


def pair(secret: object = b"s", *, clock: Clock | None = None, receiver_clock: Clock | None = None,
         purpose: str = "http", name: str = "a") -> tuple[Codec, Codec]:
    clock = clock or Clock()
    tx = Codec(secret, 1 << 24, purpose=purpose, source=clock,  # type: ignore[arg-type]
               identity=Identity.named(name, clock), guard=False)
    rx = Codec(secret, 1 << 24, purpose=purpose,  # type: ignore[arg-type]
               source=receiver_clock or clock, guard=guard())
    return tx, rx


def reason(fn: object, *args: object) -> str:
    with pytest.raises(WireError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value.reason


def test_a_frame_opens_once_and_its_body_is_encrypted() -> None:
    tx, rx = pair()
    frame = tx.seal({"secret-marker": "value-marker"})
    assert len(frame) == OVERHEAD + len(b"\x81\xad") + len("secret-marker") + 13
    assert b"marker" not in frame
    assert rx.open(frame) == {"secret-marker": "value-marker"}
    assert reason(rx.open, frame) == "replay"


def test_the_first_secret_seals_and_every_secret_opens() -> None:
    old_tx, _ = pair(b"old")
    new_tx, _ = pair([b"new", b"old"], name="b")
    _, rotating_rx = pair([b"new", b"old"])
    _, old_rx = pair(b"old")
    _, new_rx = pair(b"new")
    assert rotating_rx.open(old_tx.seal(1)) == 1
    assert rotating_rx.open(new_tx.seal(2)) == 2
    assert new_rx.open(new_tx.seal(3)) == 3
    assert reason(old_rx.open, new_tx.seal(4)) == "unknown_key"
    assert reason(new_rx.open, old_tx.seal(5)) == "unknown_key"
    assert KeyRing([b"new", b"old"]).key_ids[1] == KeyRing(b"old").key_ids[0]


def test_tampering_truncation_version_and_purpose_are_named() -> None:
    tx, rx = pair()
    frame = bytearray(tx.seal([1, 2, 3]))
    frame[-1] ^= 1
    assert reason(rx.open, bytes(frame)) == "unauthenticated"
    assert reason(rx.open, tx.seal([1])[:OVERHEAD - 1]) == "truncated"
    bad_version = bytearray(tx.seal([1]))
    bad_version[2] = 99
    assert reason(rx.open, bytes(bad_version)) == "version"
    dgram, _ = pair(purpose="datagram")
    assert reason(rx.open, dgram.seal([1])) == "purpose"
    assert reason(rx.open, b"\x00" * 100) == "malformed"
    small = Codec(b"s", 100, source=Clock())
    assert reason(small.seal, "x" * 100) == "oversized"


def test_frames_out_of_order_within_the_counter_window_open_once_each() -> None:
    tx, rx = pair()
    frames = [tx.seal(i) for i in range(70)]
    assert [rx.open(f) for f in frames[5:70]] == list(range(5, 70))
    assert reason(rx.open, frames[10]) == "replay"
    assert reason(rx.open, frames[0]) == "replay"  # 69 behind the newest: too old to tell


def test_a_frame_older_than_the_window_is_stale_even_if_never_seen() -> None:
    clock, rx_clock = Clock(), Clock()
    tx, rx = pair(clock=clock, receiver_clock=rx_clock)
    assert rx.open(tx.seal("first")) == "first"
    late = tx.seal("held back")
    rx_clock.t += 61
    assert reason(rx.open, late) == "stale"
    clock.t += 61
    assert rx.open(tx.seal("fresh")) == "fresh"


def test_a_senders_clock_offset_is_allowed_for() -> None:
    skewed, mine = Clock(t=1_700_000_000.0 - 90), Clock()  # 90 s behind us
    tx, rx = pair(clock=skewed, receiver_clock=mine)
    assert rx.open(tx.seal(1)) == 1
    skewed.t += 30
    mine.t += 30
    assert rx.open(tx.seal(2)) == 2
    far = Codec(b"s", 1 << 20, source=Clock(t=1_700_000_000.0 - 500), guard=False)
    assert reason(rx.open, far.seal(3)) == "stale"  # unknown sender, beyond max_skew


def test_a_previous_life_of_a_sender_is_stale_after_its_restart() -> None:
    clock = Clock()
    old_life, rx = pair(clock=clock)
    recorded = old_life.seal("leave")
    clock.t += 5
    new_life = Codec(b"s", 1 << 20, source=clock, identity=Identity.named("a", clock),
                     guard=False)
    assert rx.open(new_life.seal("alive")) == "alive"
    assert reason(rx.open, recorded) == "stale"


def test_a_stream_of_out_of_band_buffers_arrives_whole_and_in_order_only() -> None:
    tx, rx = pair()
    a, b = bytes(range(256)) * 1000, b"tail"
    frames = list(tx.seal_stream({"k": 1}, [a, memoryview(b)], chunk_size=100_000))
    assert len(frames) == 1 + 3 + 1
    assert all(len(f) <= 100_000 + CHUNK_OVERHEAD for f in frames[1:])
    reader = rx.open_stream(frames[0], max_total=1 << 20)
    assert reader.head == {"k": 1} and reader.sizes == [len(a), len(b)]
    assert reason(reader.feed, frames[2]) == "malformed"  # out of order
    assert [reader.feed(f) for f in frames[1:]] == [False, False, False, True]
    assert bytes(reader.buffers[0]) == a and bytes(reader.buffers[1]) == b
    other = list(tx.seal_stream({"k": 2}, [a], chunk_size=100_000))
    second = rx.open_stream(other[0], max_total=1 << 20)
    assert reason(second.feed, frames[1]) == "malformed"  # a chunk of another stream
    assert reason(rx.open_stream, tx.seal_stream({}, [a]).__next__(), 10) == "oversized"
