"""One shared object for each name, address and metadata value gossip holds.

Every node holds a record of every member, and every record came out of a
decoded message with its own name string, address tuple and metadata dict. In
one process that runs many nodes (the simulator runs a thousand), those are a
million copies of a thousand values: half the memory of a 1,000-node run, and
the CPU caches miss on them all the time. Interning makes equal values one
object, whichever node decoded them.

Behaviour never depends on this table: an interned value is equal to the one
it replaces, nothing iterates the table, and losing it (it is emptied when it
reaches its bound, so a stream of distinct values cannot grow it forever)
only costs memory. Metadata dicts become shared, so they must not be modified
in place; gossip never does (a new value is a new dict, see
``Membership.set_meta``).
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["intern_addr", "intern_member", "intern_meta", "intern_name"]

#: Distinct addresses and metadata values kept before the table starts over.
#: Far above the members of any one mesh; a bound, not a working size.
MAX_VALUES = 1 << 16

_addrs: dict[tuple[str, int], tuple[str, int]] = {}
_metas: dict[tuple[Any, ...], dict[str, Any]] = {}
_members: dict[Any, Any] = {}


def intern_name(name: str) -> str:
    """The one shared string equal to ``name`` (a member name or a host)."""
    return sys.intern(name)


def intern_addr(addr: tuple[str, int]) -> tuple[str, int]:
    """The one shared ``(host, port)`` tuple equal to ``addr``."""
    got = _addrs.get(addr)
    if got is None:
        if len(_addrs) >= MAX_VALUES:
            _addrs.clear()
        got = _addrs[addr] = (sys.intern(addr[0]), addr[1])
    return got


def intern_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """A shared dict equal to ``meta``, or ``meta`` itself when its values
    cannot be hashed (nested lists or maps)."""
    try:
        key = tuple(meta.items())
        got = _metas.get(key)
    except TypeError:
        return meta
    if got is None:
        if len(_metas) >= MAX_VALUES:
            _metas.clear()
        got = _metas[key] = meta
    return got


def intern_member(member: T) -> T:
    """The one shared member record equal to ``member`` (records are
    immutable tuples; equality compares every field). In one process that
    runs N nodes, the N records of a member that every node believes alive
    at the same incarnation become one object: a warm 10,000-node cluster
    holds 10^8 beliefs, but only about 10^4 distinct ones."""
    got = _members.get(member)
    if got is None:
        if len(_members) >= MAX_VALUES:
            _members.clear()
        got = _members[member] = member
    return got
