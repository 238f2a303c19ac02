"""What one node believes about one member, and how two beliefs combine.

A belief is ordered by ``(incarnation, status)``: a higher incarnation always
wins, and at equal incarnation ``alive < suspect < dead < left``. Only the
member itself raises its incarnation (to refute a suspicion, to change its
metadata, or when it rejoins), so the order says which belief is newer.
:func:`merge` picks the newer belief; it is commutative, associative and
idempotent, which makes gossip converge whatever order messages arrive in.
"""

from __future__ import annotations

import enum
from operator import itemgetter
from typing import Any

import msgpack

from mesh.addresses import format_address

Address = tuple[str, int]


class Status(enum.IntEnum):
    """A member's status. The integer order is the precedence at equal incarnation."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3

    @property
    def word(self) -> str:
        """The status word users and scripts see: alive, suspect, dead or left."""
        return self.name.lower()

    def __str__(self) -> str:
        return self.word

    @property
    def gone(self) -> bool:
        """Dead or left: no longer part of the live view."""
        return self >= Status.DEAD


_FIELDS = ("name", "host", "port", "incarnation", "status", "meta")
_INDEX = {f: i for i, f in enumerate(_FIELDS)}


class Member(tuple):  # type: ignore[type-arg]
    """One member as seen by one node. Immutable; updates make a new one.

    ``Member(name, addr, incarnation, status, meta={})`` is a tuple
    ``(name, host, port, incarnation, status, meta)``: exactly its row in a
    push-pull table, so a node's whole table is sent without building
    anything, and a record is one small object that is cheap to make (a
    process of the simulator holds a million of them). Equality compares
    every field; the hash leaves ``meta`` out. ``meta`` must not be modified
    in place (it may be shared, see ``mesh.gossip._intern``).
    """

    __slots__ = ()

    name: str = property(itemgetter(0), doc="The member's unique name.")  # type: ignore[assignment]
    host: str = property(itemgetter(1), doc="Host of its address.")  # type: ignore[assignment]
    port: int = property(itemgetter(2), doc="Port of its address.")  # type: ignore[assignment]
    incarnation: int = property(itemgetter(3))  # type: ignore[assignment]
    status: Status = property(itemgetter(4))  # type: ignore[assignment]
    meta: dict[str, Any] = property(itemgetter(5))  # type: ignore[assignment]

    def __new__(
        cls,
        name: str,
        addr: Address,
        incarnation: int,
        status: Status,
        meta: dict[str, Any] | None = None,
    ) -> Member:
        return tuple.__new__(cls, (name, addr[0], addr[1], incarnation, status,
                                   {} if meta is None else meta))

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self[0], (self[1], self[2]), self[3], self[4], self[5])

    def __hash__(self) -> int:
        return hash(self[:5])

    def __repr__(self) -> str:
        return (f"Member(name={self[0]!r}, addr={(self[1], self[2])!r}, incarnation={self[3]}, "
                f"status={self[4]!r}, meta={self[5]!r})")

    @property
    def addr(self) -> Address:
        """``(host, port)``."""
        return (self[1], self[2])

    @property
    def address(self) -> str:
        """``host:port`` as text (``[v6]:port`` for IPv6)."""
        return format_address((self[1], self[2]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``mesh members --json`` and the HTTP API."""
        return {
            "name": self.name,
            "address": self.address,
            "status": self.status.word,
            "incarnation": self.incarnation,
            "meta": dict(self.meta),
        }

    def with_(self, **changes: Any) -> Member:
        """A copy with ``changes`` applied (``addr`` or any field)."""
        row = list(self)
        for field, value in changes.items():
            if field == "addr":
                row[1], row[2] = value
            elif field in _INDEX:
                row[_INDEX[field]] = value
            else:
                raise TypeError(f"Member has no field {field!r}")
        return tuple.__new__(Member, row)


def precedence(m: Member) -> tuple[int, int, bytes]:
    """The total order behind :func:`merge`. The last part breaks ties between
    beliefs that differ only in address or metadata, which a correct member
    never produces, so that merge stays commutative even for a buggy peer."""
    tiebreak = msgpack.packb([m.addr[0], m.addr[1], m.meta], use_bin_type=True)
    return (m.incarnation, int(m.status), tiebreak)


def merge(a: Member, b: Member) -> Member:
    """The newer of two beliefs about the same member."""
    if a.name != b.name:
        raise ValueError(f"cannot merge beliefs about {a.name!r} and {b.name!r}")
    return a if precedence(a) >= precedence(b) else b


def supersedes(new: Member, old: Member | None) -> bool:
    """True if ``new`` is strictly newer than ``old`` (or ``old`` is unknown)."""
    return old is None or precedence(new) > precedence(old)
