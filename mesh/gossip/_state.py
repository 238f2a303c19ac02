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
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack

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


@dataclass(frozen=True, slots=True)
class Member:
    """One member as seen by one node. Immutable; updates make a new one."""

    name: str
    addr: Address
    incarnation: int
    status: Status
    meta: dict[str, Any] = field(default_factory=dict, compare=True, hash=False)

    @property
    def address(self) -> str:
        """``host:port`` as text."""
        return f"{self.addr[0]}:{self.addr[1]}"

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
        """A copy with ``changes`` applied."""
        return replace(self, **changes)


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
