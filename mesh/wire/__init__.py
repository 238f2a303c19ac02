"""The wire: one sealed frame format for every byte mesh sends.

Datagrams, HTTP bodies, websocket messages and data-plane chunks are all
frames of :mod:`mesh.wire._frame` (layout in ``docs/wire.md``): versioned,
size-bounded, encrypted and authenticated with AES-256-GCM under a key derived
from the cluster secret for their purpose, naming their key id, and carrying
sender, epoch, counter and timestamp inside the sealed part so receivers drop
replays (:mod:`mesh.wire._replay`). Channels (websockets) carry frames of
their own after an authenticated handshake: sealed with per-connection keys,
a counter as the nonce (:mod:`mesh.wire._connection`).
"""

from mesh.wire._codec import Codec, Identity, Source, StreamReader, replay_guard, unpack
from mesh.wire._connection import (
    CHANNEL_CHUNK_OVERHEAD,
    CHANNEL_OVERHEAD,
    CHANNEL_VERSION,
    ChannelCipher,
    SealedChunk,
)
from mesh.wire._frame import CHUNK_OVERHEAD, MAGIC, OVERHEAD, VERSION
from mesh.wire._keys import PURPOSES, KeyRing, Secrets, normalize_secrets
from mesh.wire._replay import ReplayGuard

AUTH_REASONS = frozenset({"unauthenticated", "unknown_key"})
"""Drop reasons that mean "not sealed with our secret": HTTP answers them 401."""

__all__ = [
    "AUTH_REASONS",
    "CHANNEL_CHUNK_OVERHEAD",
    "CHANNEL_OVERHEAD",
    "CHANNEL_VERSION",
    "CHUNK_OVERHEAD",
    "MAGIC",
    "OVERHEAD",
    "PURPOSES",
    "VERSION",
    "ChannelCipher",
    "Codec",
    "Identity",
    "KeyRing",
    "ReplayGuard",
    "SealedChunk",
    "Secrets",
    "Source",
    "StreamReader",
    "normalize_secrets",
    "replay_guard",
    "unpack",
]
