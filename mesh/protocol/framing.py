"""Exec channel paths and framing, shared by the client and the node.

* ``/v1/exec/client`` -- a channel per client: batches of
  :mod:`~mesh.protocol.messages` client records in, reply records out. The
  first frame from the client is ``{"client": id}``; the node answers
  ``{"node": name, "window": credit, "members": ["host:port", ...]}``.
* ``/v1/exec/peer`` -- one channel per ordered pair of nodes, opened lazily by
  the sender; the first frame is ``{"from": name}``.
* ``/v1/exec/stats`` (HTTP) -- the node's exec statistics.

A frame is a msgpack array of messages, sealed by the channel it travels on
(:class:`mesh.wire._transport.BoundChannel`: per-connection keys).
"""

from __future__ import annotations

import logging
from typing import Any

import msgpack

from mesh.config import DEFAULT
from mesh.wire import CHANNEL_OVERHEAD as OVERHEAD

__all__ = ["CLIENT_PATH", "PEER_PATH", "PREFIX", "STATS_PATH", "encode_frames", "pack"]

log = logging.getLogger("mesh.exec")

PREFIX = "/v1/exec/"
CLIENT_PATH = PREFIX + "client"
PEER_PATH = PREFIX + "peer"
STATS_PATH = PREFIX + "stats"


def pack(obj: Any) -> bytes:
    """One frame's body: ``obj`` as msgpack (a channel seals it)."""
    return msgpack.packb(obj, use_bin_type=True)


def encode_frames(msgs: list, limit: int, target: int = DEFAULT.frame_target) -> list[bytes]:
    """The bodies of as few frames as carry ``msgs`` (wire arrays) under
    ``limit`` bytes each once sealed, cutting batches above ``target`` bytes.
    A single message that cannot fit is dropped and logged (the callers
    prevent those). The channel seals each body as it sends it."""
    body = msgpack.packb(msgs, use_bin_type=True)
    if len(body) + OVERHEAD <= min(limit, target) or len(msgs) == 1:
        if len(body) + OVERHEAD > limit:
            log.error("dropping one %d-byte message: larger than the frame limit", len(body))
            return []
        return [body]
    half = len(msgs) // 2
    return (encode_frames(msgs[:half], limit, target)
            + encode_frames(msgs[half:], limit, target))
