"""The key ring: cluster secrets in, one AES-256-GCM key per purpose out.

Every secret is stretched with HKDF-SHA256 into one key per *purpose*
(``datagram``, ``http``, ``channel``, ``chunk``), so a frame sealed for one
purpose never opens as another, and into a 4-byte *key id* that frames carry
in clear so a receiver knows which of its secrets to try.

The first secret seals; every secret opens. Rotating a mesh to a new secret
is a rolling restart with ``[new, old]`` and then one with ``[new]`` (see the
README), with no moment at which two nodes cannot talk.

With no secret (allowed on loopback only) the ring holds the empty secret: its
keys are public constants, so frames are still checked for integrity and
garbage is rejected, but anyone on the host can forge them.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["PURPOSES", "KeyRing", "Secrets", "normalize_secrets"]

Secrets = bytes | str | Sequence[bytes | str] | None
"""One secret, several (the first seals, all open), or ``None`` for none."""

PURPOSES: dict[str, int] = {"datagram": 1, "http": 2, "channel": 3, "chunk": 4}
"""Purpose names and the byte that names them in a frame. Append-only."""

_SALT = b"mesh-wire-v2"
KEY_ID_LEN = 4


def _hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_SALT, info=info).derive(secret)


def normalize_secrets(secrets: Secrets) -> list[bytes]:
    """A list of non-empty secrets, first (the sealing one) first, duplicates
    removed. ``None``, ``b""`` or an empty list mean no secret."""
    if secrets is None:
        return []
    if isinstance(secrets, bytes | str):
        secrets = [secrets]
    out: list[bytes] = []
    for s in secrets:
        if isinstance(s, str):
            s = s.encode()
        if not isinstance(s, bytes | bytearray):
            raise TypeError(f"a secret must be bytes or str, not {type(s).__name__}")
        if s and bytes(s) not in out:
            out.append(bytes(s))
    return out


class KeyRing:
    """Keys derived from one or more cluster secrets. Immutable."""

    __slots__ = ("_channel", "_open", "_seal", "key_ids")

    def __init__(self, secrets: Secrets) -> None:
        ring = normalize_secrets(secrets) or [b""]
        self.key_ids: list[bytes] = [_hkdf(s, b"mesh key id", KEY_ID_LEN) for s in ring]
        # purpose byte -> key id -> [AESGCM, ...] (a key id collision between two
        # secrets is possible, one in 2**32: both are tried)
        self._open: dict[int, dict[bytes, list[AESGCM]]] = {}
        self._seal: dict[int, tuple[bytes, AESGCM]] = {}
        # key id -> the channel key of the first secret with that id: what a
        # channel's per-connection keys derive from (connection_keys)
        self._channel: dict[bytes, bytes] = {}
        for purpose_name, purpose in PURPOSES.items():
            table: dict[bytes, list[AESGCM]] = {}
            for secret, kid in zip(ring, self.key_ids, strict=True):
                raw = _hkdf(secret, b"mesh/" + purpose_name.encode())
                if purpose_name == "channel":
                    self._channel.setdefault(kid, raw)
                aes = AESGCM(raw)
                table.setdefault(kid, []).append(aes)
                if purpose not in self._seal:
                    self._seal[purpose] = (kid, aes)
            self._open[purpose] = table

    @property
    def sealing_key_id(self) -> bytes:
        return self.key_ids[0]

    def sealer(self, purpose: int) -> tuple[bytes, AESGCM]:
        """The key id and cipher that seal frames of ``purpose``."""
        return self._seal[purpose]

    def table(self, purpose: int) -> dict[bytes, list[AESGCM]]:
        """Key id -> ciphers that open frames of ``purpose``."""
        return self._open[purpose]

    def openers(self, purpose: int, key_id: bytes) -> list[AESGCM]:
        """The ciphers that may open a frame of ``purpose`` naming ``key_id``
        (empty: none of our secrets has that id)."""
        table = self._open.get(purpose)
        return [] if table is None else table.get(key_id, [])

    def connection_keys(self, key_id: bytes, client_nonce: bytes, server_nonce: bytes
                        ) -> tuple[bytes, bytes]:
        """The two keys of one channel (client to server, server to client):
        HKDF-SHA256 of the channel key of secret ``key_id``, salted with both
        ends' handshake nonces. Raises KeyError for a key id none of our
        secrets has (the handshake opened under it, so it never happens)."""
        both = HKDF(algorithm=hashes.SHA256(), length=64, salt=client_nonce + server_nonce,
                    info=b"mesh/connection").derive(self._channel[key_id])
        return both[:32], both[32:]
