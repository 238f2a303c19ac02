"""The wire: one sealed frame format for every byte mesh sends.

Datagrams, HTTP bodies, websocket messages and data-plane chunks are all
frames of :mod:`mesh.wire._frame` (layout in ``docs/wire.md``): versioned,
size-bounded, encrypted and authenticated with AES-256-GCM under a key derived
from the cluster secret for their purpose, naming their key id, and carrying
sender, epoch, counter and timestamp inside the sealed part so receivers drop
replays (:mod:`mesh.wire._replay`).
"""

from mesh.wire._codec import Codec, Identity, Source, StreamReader, replay_guard
from mesh.wire._frame import CHUNK_OVERHEAD, MAGIC, OVERHEAD, VERSION
from mesh.wire._keys import PURPOSES, KeyRing, Secrets, normalize_secrets
from mesh.wire._replay import ReplayGuard

AUTH_REASONS = frozenset({"unauthenticated", "unknown_key"})
"""Drop reasons that mean "not sealed with our secret": HTTP answers them 401."""

__all__ = [
    "AUTH_REASONS",
    "CHUNK_OVERHEAD",
    "MAGIC",
    "OVERHEAD",
    "PURPOSES",
    "VERSION",
    "Codec",
    "Identity",
    "KeyRing",
    "ReplayGuard",
    "Secrets",
    "Source",
    "StreamReader",
    "normalize_secrets",
    "replay_guard",
]
