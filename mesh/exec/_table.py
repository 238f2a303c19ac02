"""The state one node's exec core keeps, shared by its components.

:class:`Table` declares every field the components of
:class:`mesh.exec._core.ExecCore` read and write (a component keeps nothing
else but its own private bookkeeping); :class:`Subscriptions` is the interface
the execution and view components use to ask for and hand out results.
Sans-IO: messages are queued here and handed out as effects by the core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from mesh.config import DEFAULT
from mesh.exec._records import SPEC_REPLICAS, Session, Stored, Task
from mesh.exec._ring import Ring
from mesh.metrics import Metrics
from mesh.protocol.messages import Need

_MAX_FUNCTIONS = 1024
"""Distinct pickled functions interned at once (one copy each, however many
specs carry it)."""


@dataclass(slots=True, eq=False)
class Table:
    """Every key, task, result and session this node knows about."""

    name: str
    replicas: int
    max_crashes: int
    metrics: Metrics
    window: int
    ring: Ring
    vnodes: int
    probes: int
    max_points: int
    now: float = 0.0
    completed: int = 0
    tasks: dict[str, Task] = field(default_factory=dict)
    """Specs held here (as owner, backup or thief)."""
    results: dict[str, Stored] = field(default_factory=dict)
    ready: deque[str] = field(default_factory=deque)
    """Keys of queued tasks, oldest first (entries may be stale)."""
    orphan_wants: dict[str, set[str]] = field(default_factory=dict)
    """Subscribers that asked for a key this node holds nothing of yet."""
    orphaned: dict[str, float] = field(default_factory=dict)
    """Keys whose every subscriber died, with when (kept for a grace)."""
    gone: set[str] = field(default_factory=set)
    """Nodes that left the view and have not come back. A subscription from
    one arrives late (it was sent before the node died or was cut off), and
    that node will never release it: a node restarts with no state, and a cut
    off one asks its holders again when the view heals."""
    sessions: dict[int, Session] = field(default_factory=dict)
    watch: dict[str, set[int]] = field(default_factory=dict)
    """Sessions waiting for a key's result."""
    fetch: dict[str, set[int]] = field(default_factory=dict)
    """Sessions waiting for the value of a key whose result they were told
    is kept on the mesh (``REMOTE``, :class:`~mesh.protocol.messages.Fetch`)."""
    held: dict[str, set[int]] = field(default_factory=dict)
    """Sessions holding a key (until they release it)."""
    waiters: dict[str, list[str]] = field(default_factory=dict)
    """Local tasks waiting for a dependency."""
    interest: dict[str, int] = field(default_factory=dict)
    """How many local tasks use a dependency."""
    specs: dict[str, list] = field(default_factory=dict)
    """Specs of the keys clients attached here hold, to run them again if
    every copy of their result is lost while a dependent still needs it."""
    pending: dict[str, list | None] = field(default_factory=dict)
    """Keys this node waits for, with the spec when a client gave it (so it
    can submit again if every holder dies)."""
    asked: dict[str, set[str]] = field(default_factory=dict)
    """Holders of an earlier view that this node asked for a key it still
    waited for when the key's list changed: its release goes to them too."""
    fns: dict[bytes, bytes] = field(default_factory=dict)
    to_peers: dict[str, list] = field(default_factory=dict)
    to_clients: dict[int, list] = field(default_factory=dict)
    lazy: set[str] = field(default_factory=set)
    """Peers whose messages in ``to_peers`` are all :meth:`send_later` ones."""
    local: deque = field(default_factory=deque)
    """Messages to this node itself, handled before the core returns."""
    locators: dict[str, set[str]] = field(default_factory=dict)
    """Subscribers of a key here that want a large result located, not sent."""
    locating: set[str] = field(default_factory=set)
    """Keys this node asked to locate rather than fetch."""
    depths: dict[str, int] = field(default_factory=dict)
    """Peers' queue depths, from gossip metadata (locality avoids a busy node)."""
    locality_bytes: int = DEFAULT.locality_bytes
    """Inputs of at least this many bytes are run next to rather than fetched."""
    listeners: list = field(default_factory=list)
    """Another layer's ``(key, kind, payload)`` callbacks, told of every
    dependency value that reaches this node (mesh.actors: calls whose
    arguments are futures)."""

    def send(self, dest: str, msg: object) -> None:
        if dest == self.name:
            self.local.append(msg)
        else:
            out = self.to_peers.get(dest)
            if out is None:
                self.to_peers[dest] = [msg]
            else:
                out.append(msg)
                if self.lazy:
                    self.lazy.discard(dest)

    def send_later(self, dest: str, msg: object) -> None:
        """Like :meth:`send`, for a message nothing waits on: it may ride on
        the next frame to ``dest`` (:class:`~mesh.exec._effects.ToPeer`'s
        ``urgent``)."""
        if dest == self.name:
            self.local.append(msg)
        elif dest in self.to_peers:
            self.to_peers[dest].append(msg)
        else:
            self.to_peers[dest] = [msg]
            self.lazy.add(dest)

    def subscribers(self, subs: Iterable[str]) -> set[str]:
        """``subs`` without the nodes that left the view."""
        got = set(subs)
        if self.gone:
            got -= self.gone
        return got

    def orphan_if_unsubscribed(self, key: str, subs: set[str]) -> None:
        """A task or result that arrives with no subscriber (they left, or
        it was orphaned where it came from) is kept only for the grace."""
        if not subs:
            self.orphaned.setdefault(key, self.now)

    def to_client(self, sid: int, msg: object) -> None:
        out = self.to_clients.get(sid)
        if out is None:
            self.to_clients[sid] = [msg]
        else:
            out.append(msg)

    def replicas_of(self, spec: list) -> int:
        """How many nodes keep the result of ``spec``: its own ``replicas``,
        else this node's default."""
        return spec[SPEC_REPLICAS] or self.replicas

    def spec_list(self, key: str, r: int) -> tuple[str, ...]:
        """The nodes that hold the spec of ``key`` whose result is kept ``r``
        times: ``max(r, --replicas)`` of them, so a key kept on fewer nodes
        than ``--replicas`` has its spec on more nodes than its result
        (:mod:`mesh.exec._lineage`); its targets are the first ``r``."""
        return self.ring.pref(key, max(r, self.replicas))

    def new_ring(self, members: list[tuple[str, int]]) -> Ring:
        return Ring(members, self.replicas, vnodes=self.vnodes, probes=self.probes,
                    max_points=self.max_points)

    def intern(self, fn: bytes) -> bytes:
        """One copy of each pickled function: a map of 100,000 tasks carries
        the same function bytes in every spec."""
        got = self.fns.get(fn)
        if got is None:
            if len(self.fns) >= _MAX_FUNCTIONS:
                self.fns.clear()
            self.fns[fn] = got = fn
        return got


class Subscriptions(Protocol):
    """What the subscriber side offers the other components."""

    def request(self, key: str, spec: list | None) -> None:
        """Ask ``key``'s holders for its result (submitting ``spec`` if known)."""

    def deliver(self, key: str, kind: int, payload: bytes) -> None:
        """A confirmed result of ``key`` reached this node as a subscriber."""

    def arrived(self, key: str, kind: int, payload: bytes) -> None:
        """A confirmed result of ``key`` reached this node, named as a
        subscriber: deliver it, or release it if nothing here needs it."""

    def maybe_release(self, key: str) -> None:
        """Unsubscribe from ``key`` if nothing here needs it any more."""

    def on_need(self, msg: Need) -> None:
        """Nobody answers for ``key``: submit it again from its spec, or ask
        the clients that hold it to."""

    def located(self, key: str, nbytes: int) -> None:
        """``key``'s result is a large value kept elsewhere: tell the clients
        waiting here it is done (``REMOTE``) without fetching it."""
