"""The ordered event trace of one simulation, kept as a running hash.

Every packet the network carries (with its fate and delivery time), every fault
and every membership event a node reports is fed, in the order it happens, into
one BLAKE2b hash. Two runs with the same seed produce the same digest; a single
changed byte, time or ordering anywhere changes it. The trace is hashed rather
than stored so that a million-event run costs no memory; ``keep`` retains the
last few records as text for debugging a divergence.
"""

from __future__ import annotations

import hashlib
import struct
from collections import deque

_PKT = struct.Struct("<dBII I d")
_EV = struct.Struct("<dBIIq")
EVENT = 12

# packet kinds and fates
SEND = 1
DROP_LOSS = 2
DROP_CUT = 3
DROP_DOWN = 4
DROP_NOHOST = 5
HELD = 6
DUP = 7
DROP_ARRIVAL = 8
HTTP_REQ = 9
HTTP_RESP = 10
CHAN_MSG = 11

KIND_NAMES = {
    SEND: "send",
    DROP_LOSS: "drop-loss",
    DROP_CUT: "drop-cut",
    DROP_DOWN: "drop-down",
    DROP_NOHOST: "drop-nohost",
    HELD: "held",
    DUP: "dup",
    DROP_ARRIVAL: "drop-arrival",
    HTTP_REQ: "http-req",
    HTTP_RESP: "http-resp",
    CHAN_MSG: "chan-msg",
}


class Trace:
    """An append-only, hashed record of everything that happened, in order."""

    __slots__ = ("_h", "_pack", "count", "tail")

    def __init__(self, keep: int = 0) -> None:
        self._h = hashlib.blake2b(digest_size=16)
        self._pack = _PKT.pack
        self.count = 0
        """Records so far (each packet, fault and membership event is one)."""
        self.tail: deque[str] | None = deque(maxlen=keep) if keep else None

    def packet(self, t: float, kind: int, src: int, dst: int, data: bytes, due: float) -> None:
        """One packet event: ``kind`` (a fate above), host indices, payload and
        the virtual time it will arrive (0 when it will not)."""
        self.count += 1
        h = self._h
        h.update(self._pack(t, kind, src, dst, len(data), due))
        h.update(data)
        if self.tail is not None:
            self.tail.append(f"{t:.6f} {KIND_NAMES.get(kind, kind)} {src}->{dst} {len(data)}B")

    def event(self, t: float, observer: int, kind: str, member: int, incarnation: int) -> None:
        """A membership event one node reported (kind: its first letter is kept)."""
        self.count += 1
        self._h.update(_EV.pack(t, EVENT, observer, member, incarnation) + kind[:2].encode())
        if self.tail is not None:
            self.tail.append(f"{t:.6f} ev {observer} {kind} {member} inc={incarnation}")

    def note(self, t: float, *fields: object) -> None:
        """Any other event (a fault, a membership change), as text fields."""
        self.count += 1
        text = f"{t!r} " + " ".join(str(f) for f in fields)
        self._h.update(text.encode() + b"\n")
        if self.tail is not None:
            self.tail.append(text)

    def digest(self) -> str:
        """Hex digest of the trace so far."""
        return self._h.hexdigest()
