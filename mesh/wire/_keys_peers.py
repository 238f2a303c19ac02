"""Which of our keys seals to which peer: rotation in two rolling restarts.

The first of our secrets is the one we prefer, and every one of them opens.
A node or client seals to a peer with the first of its keys that the peer is
known to hold, learned only from authenticated sources:

* the key id of every frame that opened (the sender holds that key);
* an advertisement of the key ids a peer holds: a node's ``key_ids`` member
  metadata (spread by gossip, so a node knows what a member it never talked
  to holds) and the server's answer to a channel handshake. An
  advertisement replaces what we knew: the peer restarted with these.

A peer we know nothing of gets our first key. If an exchange sealed with a
key gets no authenticated answer (HTTP 401, a refused handshake, a timeout),
that key is marked as failed for that peer and the next attempt uses the next
of our keys; an authenticated frame or advertisement clears the mark. Failures
only reorder keys we hold and accept anyway: an unknown key id is still
dropped and counted by the codec, and nothing unauthenticated is learned.

A server answers in the key the request or handshake used (:meth:`reseal`),
so a peer can always read its replies.

With ``[new, old]`` on a node mid-rotation this gives: ``old`` to nodes that
hold only ``old`` (their metadata says so), ``new`` to nodes that hold
``new``, and ``old`` after one refusal to a seed never heard from. So a
rolling restart with ``[new, old]`` and then one with ``[new]`` rotates a
mesh with no moment at which two nodes cannot talk.

Frames are sealed with the codec's first key and *resealed* here for a peer
that does not hold it (decrypted and encrypted again under the chosen key,
with a fresh nonce and the same envelope): that costs a second pass of the
cipher, only while a mesh rotates.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

from mesh.errors import WireError
from mesh.wire import _frame as F
from mesh.wire._codec import Source
from mesh.wire._keys import KEY_ID_LEN, PURPOSES, KeyRing

__all__ = ["PeerKeys", "parse_key_ids"]

_CHUNK = PURPOSES["chunk"]
MAX_ADVERTISED = 16
"""Key ids taken from one advertisement (more are ignored)."""


def parse_key_ids(raw: Any) -> tuple[bytes, ...] | None:
    """Key ids from an advertisement: a list of 4-byte ``bytes`` (handshakes)
    or a string of comma-separated hex ids (member metadata). ``None`` for
    anything else: a malformed advertisement teaches nothing."""
    if type(raw) is str:
        try:
            ids = [bytes.fromhex(part) for part in raw.split(",")] if raw else []
        except ValueError:
            return None
    elif type(raw) is list:
        ids = raw
    else:
        return None
    if not ids or len(ids) > MAX_ADVERTISED or not all(
            type(k) is bytes and len(k) == KEY_ID_LEN for k in ids):
        return None
    return tuple(ids)


class _Peer:
    __slots__ = ("failed", "holds")

    def __init__(self) -> None:
        self.holds: set[bytes] = set()
        self.failed: set[bytes] = set()


class PeerKeys:
    """Per peer (any hashable: an address), the key to seal with. Remembers
    at most ``max_peers`` peers, least recently changed forgotten first."""

    __slots__ = ("_choice", "_first", "_ids", "_peers", "_source", "max_peers", "ring")

    def __init__(self, ring: KeyRing, source: Source, max_peers: int = 4096) -> None:
        self.ring = ring
        self._source = source
        self.max_peers = max_peers
        self._ids = list(dict.fromkeys(ring.key_ids))
        self._first = self._ids[0]
        self._peers: OrderedDict[Hashable, _Peer] = OrderedDict()
        self._choice: dict[Hashable, bytes] = {}

    @property
    def advertisement(self) -> str:
        """Our key ids as member metadata: comma-separated hex, first first."""
        return ",".join(k.hex() for k in self._ids)

    @property
    def key_ids(self) -> list[bytes]:
        """Our key ids, preferred first (for a handshake's advertisement)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._peers)

    # ---------------------------------------------------------------- choose
    def choose(self, peer: Hashable) -> bytes:
        """The key id to seal frames to ``peer`` with."""
        return self._choice.get(peer, self._first)

    def _decide(self, peer: Hashable, p: _Peer) -> None:
        # Preferred: held and not failed; then not failed (a key the peer may
        # hold); then failed ones. Our order breaks ties. All failed: start over.
        if p.failed.issuperset(self._ids):
            p.failed.clear()
        kid = min(self._ids, key=lambda k: (k in p.failed, k not in p.holds))
        if kid == self._first:
            self._choice.pop(peer, None)
        else:
            self._choice[peer] = kid

    def _peer(self, peer: Hashable) -> _Peer:
        p = self._peers.get(peer)
        if p is None:
            p = self._peers[peer] = _Peer()
            if len(self._peers) > self.max_peers:
                old, _ = self._peers.popitem(last=False)
                self._choice.pop(old, None)
        else:
            self._peers.move_to_end(peer)
        return p

    # ----------------------------------------------------------------- learn
    def heard(self, peer: Hashable, key_id: bytes) -> None:
        """An authenticated frame from ``peer`` was sealed with ``key_id``."""
        p = self._peers.get(peer)
        if p is not None and key_id in p.holds and key_id not in p.failed:
            return  # the common case: nothing new
        if key_id not in self._ids:
            return
        p = self._peer(peer)
        p.holds.add(key_id)
        p.failed.discard(key_id)
        self._decide(peer, p)

    def holds(self, peer: Hashable, key_ids: Iterable[bytes]) -> None:
        """An authenticated advertisement: ``peer`` holds exactly ``key_ids``."""
        ids = set(key_ids)
        p = self._peers.get(peer)
        if p is not None and p.holds == ids and not p.failed:
            return
        p = self._peer(peer)
        p.holds = ids
        p.failed.clear()
        self._decide(peer, p)

    def failed(self, peer: Hashable, key_id: bytes) -> None:
        """An exchange with ``peer`` sealed with ``key_id`` got no
        authenticated answer: try our next key next time."""
        if key_id not in self._ids:
            return
        p = self._peer(peer)
        p.failed.add(key_id)
        self._decide(peer, p)

    def answered(self, peer: Hashable, key_id: bytes) -> None:
        """``peer`` accepted an exchange sealed with ``key_id`` (its answer
        is authenticated by whoever opens it): the mark of a failure goes."""
        p = self._peers.get(peer)
        if p is not None and key_id in p.failed:
            p.failed.discard(key_id)
            self._decide(peer, p)

    # ---------------------------------------------------------------- reseal
    def reseal(self, frame: Any, key_id: bytes) -> Any:
        """``frame`` (one we sealed) sealed under ``key_id`` instead: same
        purpose, envelope and body, a fresh nonce. Returned unchanged when it
        already is, when it is not a frame, or when ``key_id`` is none of ours."""
        view = memoryview(frame)
        if len(view) < F.HEADER_LEN + F.TAG_LEN or view[:2] != F.MAGIC or (
                view[4:8] == key_id):
            return frame
        purpose = view[3]
        ciphers = self.ring.openers(purpose, key_id)
        if not ciphers:
            return frame
        aad_len = F.CHUNK_HEADER_LEN if purpose == _CHUNK else F.HEADER_LEN
        try:
            plain = F.decrypt(self.ring, view, purpose, aad_len)
        except WireError:
            return frame  # not ours to reseal: the peer refuses it as before
        nonce = self._source.token_bytes(12)
        aad = F.header(purpose, key_id, nonce) + bytes(view[F.HEADER_LEN:aad_len])
        return aad + ciphers[0].encrypt(nonce, plain, aad)

    def seal_for(self, peer: Hashable, frame: Any) -> Any:
        """``frame`` sealed with the key :meth:`choose` gives for ``peer``."""
        kid = self._choice.get(peer)
        return frame if kid is None else self.reseal(frame, kid)
