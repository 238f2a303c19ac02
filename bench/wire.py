"""Wire benchmark: sealing and opening frames, against the HMAC framing.

    python -m bench.wire [--rounds 5] [--seconds 0.5]

Prints ONE JSON line:

* ``seal_open_mb_per_s`` -- MB (10**6 bytes) of 1 MiB bodies sealed and then
  opened per CPU second by :class:`mesh.wire.Codec` (AES-256-GCM, replay
  check included); ``hmac.seal_open_mb_per_s`` the same for the HMAC-SHA256
  framing of wire version 1 (``bench/_hmac_framing.py``, kept for this).
* ``stream_mb_per_s`` -- the same bytes as one stream of 1 MiB chunks
  (:meth:`Codec.seal_stream` / :class:`StreamReader`, decrypting in place).
* ``datagrams_per_s`` -- 1,400-byte datagrams (a msgpack body that fills
  ``max_datagram``) sealed and opened per CPU second; ``hmac.datagrams_per_s``
  likewise.
* ``channel_frames_per_s`` -- small exec frames (a 150-byte msgpack body, a
  task's submission) sealed and opened per CPU second on a bound channel
  (:class:`mesh.wire.ChannelCipher`: per-connection keys, a counter nonce),
  the frames of exec traffic between clients and nodes;
  ``codec_frames_per_s`` the same body as a codec frame (envelope and replay
  check: what HTTP bodies and datagrams carry); ``hmac.small_frames_per_s``
  the HMAC framing. Each includes msgpack decoding of the body.
* ``speedup`` -- new over old for each (``channel_frames``: channel frames
  over HMAC frames).

Each figure is the best of ``--rounds`` rounds of ``--seconds`` CPU seconds
(``time.process_time``), so other load on the machine slows it less.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import msgpack

from bench._hmac_framing import Codec as HmacCodec
from mesh.config import DEFAULT
from mesh.wire import OVERHEAD, ChannelCipher, Codec, KeyRing, unpack

MIB = 1 << 20


def _rate(fn: Callable[[], int], rounds: int, seconds: float) -> float:
    """Best units per CPU second of ``fn`` (which returns units done)."""
    best = 0.0
    for _ in range(rounds):
        done = 0
        t0 = time.process_time()
        while (elapsed := time.process_time() - t0) < seconds:
            done += fn()
        best = max(best, done / elapsed)
    return best


def _datagram_body(limit: int) -> bytes:
    """A compound gossip message of exactly ``limit`` bytes."""
    pad = limit
    while True:
        body = msgpack.packb([[5, 1, "node", "127.0.0.1", 7946, {"pad": "x" * pad}]])
        if len(body) <= limit:
            return body + b"\xc0" * (limit - len(body)) if len(body) == limit else body
        pad -= len(body) - limit


def _hundred(open_: Callable[[bytes], object], seal: Callable[[bytes], bytes],
             body: bytes) -> Callable[[], int]:
    """A round of 100 frames of ``body`` sealed and opened."""
    def run() -> int:
        for _ in range(100):
            open_(seal(body))
        return 100
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.wire")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args(argv)
    secret = b"bench-secret"

    big = msgpack.packb(bytes(MIB - 16))
    tx, rx = Codec(secret, 4 * MIB), Codec(secret, 4 * MIB)
    old = HmacCodec(secret, 4 * MIB)

    def new_big() -> int:
        rx.open_body(tx.seal_body(big))
        return len(big)

    def old_big() -> int:
        old.open(old.seal_body(big))
        return len(big)

    payload = bytes(MIB)

    def stream() -> int:
        frames = tx.seal_stream(None, [payload], chunk_size=MIB)
        reader = rx.open_stream(next(frames), 4 * MIB)
        for frame in frames:
            reader.feed(frame)
        return len(payload)

    dgram_new = _datagram_body(DEFAULT.max_datagram - OVERHEAD)
    dgram_old = _datagram_body(DEFAULT.max_datagram - 35)
    dtx = Codec(secret, DEFAULT.max_datagram, purpose="datagram")
    drx = Codec(secret, DEFAULT.max_datagram, purpose="datagram")
    dold = HmacCodec(secret, DEFAULT.max_datagram)
    sizes = (len(dtx.seal_body(dgram_new)), len(dold.seal_body(dgram_old)))

    small = msgpack.packb([["s", "noop-" + "0" * 32, [b"f" * 60, 0, b"a" * 40, [], 0, 0]]])
    ring = KeyRing(secret)
    kid = ring.key_ids[0]
    up, down = ring.connection_keys(kid, bytes(16), bytes(range(16)))
    ctx, crx = ChannelCipher(kid, up, down, 4 * MIB), ChannelCipher(kid, down, up, 4 * MIB)
    stx, srx = Codec(secret, 4 * MIB), Codec(secret, 4 * MIB)

    new_dgram = _hundred(drx.open, dtx.seal_body, dgram_new)
    old_dgram = _hundred(dold.open, dold.seal_body, dgram_old)
    new_small = _hundred(lambda f: unpack(crx.open(f)), ctx.seal, small)
    codec_small = _hundred(srx.open, stx.seal_body, small)
    old_small = _hundred(old.open, old.seal_body, small)

    r, s = args.rounds, args.seconds
    new_mb, old_mb = _rate(new_big, r, s) / 1e6, _rate(old_big, r, s) / 1e6
    stream_mb = _rate(stream, r, s) / 1e6
    new_dps, old_dps = _rate(new_dgram, r, s), _rate(old_dgram, r, s)
    chan_fps, codec_fps = _rate(new_small, r, s), _rate(codec_small, r, s)
    old_fps = _rate(old_small, r, s)
    print(json.dumps({
        "seal_open_mb_per_s": round(new_mb),
        "stream_mb_per_s": round(stream_mb),
        "datagrams_per_s": round(new_dps),
        "channel_frames_per_s": round(chan_fps),
        "codec_frames_per_s": round(codec_fps),
        "hmac": {"seal_open_mb_per_s": round(old_mb), "datagrams_per_s": round(old_dps),
                 "small_frames_per_s": round(old_fps)},
        "speedup": {"seal_open": round(new_mb / old_mb, 2),
                    "datagrams": round(new_dps / old_dps, 2),
                    "channel_frames": round(chan_fps / old_fps, 2)},
        "datagram_frame_bytes": list(sizes), "body_bytes": len(big),
    }))


if __name__ == "__main__":
    main()
