"""Client uploads on a node, sans-IO: which values the client sessions may be
sending at once, and what a session that goes away leaves behind.

A value a client scatters (``Client.scatter``, or a large argument of
``submit``) arrives as an offer and then chunks on the client's sealed
channel (:mod:`mesh.store._channel`). Before any of its bytes is buffered the
node's driver (:mod:`mesh.exec._uploads`) asks :class:`Uploads`:

* an offer whose declared size is not positive or exceeds what the node's
  store can hold (its memory limit and spill disk together) is refused, with
  a message that names the key, the size, the node and the limit;
* a session may be receiving at most ``max_values`` values at once, and all
  sessions together at most ``max_bytes`` bytes (the store's capacity): a
  client cannot make a node reserve more than it can keep;
* an accepted upload holds its reservation until the value arrived whole
  (:class:`Landed`: it matched its digest, so a partial value is never used)
  or its session closed (:class:`Closed`), when the driver is told to
  discard what arrived (:class:`Discard`).

Events in, effects out; no clock, no I/O. The transitions of one upload are
the table :data:`TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Accept", "Closed", "Discard", "Landed", "Offered", "Refuse", "Uploads"]

# ------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Offered:
    """Session ``sid`` offers the value of ``key``, ``nbytes`` bytes."""

    sid: int
    key: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class Landed:
    """The value of ``key`` from session ``sid`` arrived whole (or was
    already held here); its reservation ends."""

    sid: int
    key: str


@dataclass(frozen=True, slots=True)
class Closed:
    """Session ``sid`` went away (its channel closed)."""

    sid: int


Event = Offered | Landed | Closed

# ------------------------------------------------------------------ effects


@dataclass(frozen=True, slots=True)
class Accept:
    """Receive the offered value (its bytes may now be buffered)."""

    sid: int
    key: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """Cancel the offer and tell the client ``reason``."""

    sid: int
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Discard:
    """Drop what arrived of these uploads of session ``sid``."""

    sid: int
    keys: tuple[str, ...]


Effect = Accept | Refuse | Discard

RECEIVING = "receiving"
"""An upload's one state while it is held here; it ends landed or discarded."""
TRANSITIONS: dict[tuple[str | None, str], str | None] = {
    (None, "accept"): RECEIVING,
    (RECEIVING, "offer again"): RECEIVING,
    (RECEIVING, "land"): None,
    (RECEIVING, "close"): None,
}
"""``(state, event) -> state`` of one upload (None: not held here)."""


class Uploads:
    """Every upload the node's client sessions are sending it."""

    def __init__(self, node: str, *, max_value: int, max_values: int,
                 max_bytes: int) -> None:
        if max_values < 1 or max_value < 1 or max_bytes < 1:
            raise ValueError("upload limits must be at least 1")
        self.node = node
        self.max_value = max_value
        """The largest value accepted: the store's memory limit and disk together."""
        self.max_values = max_values
        self.max_bytes = max_bytes
        self.sessions: dict[int, dict[str, int]] = {}
        """Per session, the keys it is uploading and their sizes."""
        self.bytes = 0
        """Bytes reserved by every upload in flight."""
        self.refused = 0
        self._handlers: dict[type, Callable[..., list[Effect]]] = {
            Offered: self._offered, Landed: self._landed, Closed: self._closed}

    def handle(self, event: Event) -> list[Effect]:
        return self._handlers[type(event)](event)

    def state(self, sid: int, key: str) -> str | None:
        return RECEIVING if key in self.sessions.get(sid, ()) else None

    @property
    def values(self) -> int:
        return sum(len(s) for s in self.sessions.values())

    def _offered(self, ev: Offered) -> list[Effect]:
        held = self.sessions.get(ev.sid)
        if held is not None and ev.key in held:
            self._move(RECEIVING, "offer again")
            return [Accept(ev.sid, ev.key)]  # the same key again: it joins the fetch
        reason = self._check(ev, held)
        if reason is not None:
            self.refused += 1
            return [Refuse(ev.sid, ev.key, reason)]
        self._move(None, "accept")
        self.sessions.setdefault(ev.sid, {})[ev.key] = ev.nbytes
        self.bytes += ev.nbytes
        return [Accept(ev.sid, ev.key)]

    def _check(self, ev: Offered, held: dict[str, int] | None) -> str | None:
        if ev.nbytes < 1:
            return f"the value of {ev.key!r} declares {ev.nbytes} bytes; a value has at least 1"
        if ev.nbytes > self.max_value:
            return (f"the value of {ev.key!r} is {ev.nbytes} bytes, more than node "
                    f"{self.node!r} can hold ({self.max_value} bytes: its --memory-limit and "
                    "the free space of its spill directory together)")
        if held is not None and len(held) >= self.max_values:
            return (f"the value of {ev.key!r} was refused: this client is uploading "
                    f"{len(held)} values to node {self.node!r} already, its limit "
                    f"(Config.upload_max_values)")
        if self.bytes + ev.nbytes > self.max_bytes:
            return (f"the value of {ev.key!r} ({ev.nbytes} bytes) was refused: node "
                    f"{self.node!r} is receiving {self.bytes} bytes of uploads already and "
                    f"can hold {self.max_bytes}; try again when they landed")
        return None

    def _landed(self, ev: Landed) -> list[Effect]:
        held = self.sessions.get(ev.sid)
        if held is None or ev.key not in held:
            return []
        self._move(RECEIVING, "land")
        self.bytes -= held.pop(ev.key)
        if not held:
            del self.sessions[ev.sid]
        return []

    def _closed(self, ev: Closed) -> list[Effect]:
        held = self.sessions.pop(ev.sid, None)
        if not held:
            return []
        for _ in held:
            self._move(RECEIVING, "close")
        self.bytes -= sum(held.values())
        return [Discard(ev.sid, tuple(sorted(held)))]

    @staticmethod
    def _move(state: str | None, event: str) -> None:
        if (state, event) not in TRANSITIONS:
            raise AssertionError(f"an upload moved along ({state}, {event})")

    def stats(self) -> dict[str, int]:
        return {"uploads_in_flight": self.values, "upload_bytes_in_flight": self.bytes,
                "uploads_refused": self.refused}
