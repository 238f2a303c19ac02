"""Dissemination: which peers get a datagram, and what it piggybacks.

SWIM spreads membership news by infection: every ``gossip_interval`` a node
sends ``gossip_nodes`` random peers (the live ones, then the recently gone,
so they can learn of their death and refute) a datagram of queued
broadcasts, and every other datagram it sends (pings, acks, answers to stale
accusations) carries as many queued broadcasts as fit.

:class:`Dissemination` is a component of
:class:`~mesh.gossip._membership.Membership` over its member table, its
:class:`~mesh.gossip._broadcast.BroadcastQueue` and its outbox. It does no
I/O and reads no clock either.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable

from mesh.config import Config
from mesh.gossip._broadcast import BroadcastQueue
from mesh.gossip._events import PushPull, Send
from mesh.gossip._messages import COMPOUND_HEADER_MAX, Alive, Dead, Suspect, compound, encode
from mesh.gossip._state import Address, Member, Status
from mesh.gossip._table import MemberTable
from mesh.wire import OVERHEAD


class Dissemination:
    """Queued broadcasts out, piggybacked on every datagram."""

    def __init__(self, config: Config, rng: random.Random, table: MemberTable,
                 out: list[Send | PushPull], num_live: Callable[[], int]) -> None:
        self.config = config
        self._rng = rng
        self._table = table
        self._out = out
        self._num_live = num_live
        self.broadcasts = BroadcastQueue()

    def gossip(self, now: float) -> None:
        """One gossip round: a datagram of broadcasts to ``gossip_nodes`` peers."""
        if not len(self.broadcasts):
            return
        # Targets are the live peers, then the recently gone. Drawn as indices
        # into that sequence, which is never built: a sample depends only on
        # its length.
        table = self._table
        live = table.live
        gone = table.gone_names
        first_recent = bisect.bisect_left(table.gone_at, now - self.config.gossip_to_dead)
        total = len(live) + len(gone) - first_recent
        k = min(self.config.gossip_nodes, total)
        for i in self._rng.sample(range(total), k):
            if not len(self.broadcasts):
                break
            name = live[i] if i < len(live) else gone[first_recent + i - len(live)]
            self.send(table.members[name].addr, [])

    def send(self, addr: Address, prims: list[bytes]) -> None:
        """Queue one datagram: ``prims`` first, then as many queued broadcasts
        as fit. Nothing is sent if there is nothing to say."""
        budget = (
            self.config.max_datagram - OVERHEAD - COMPOUND_HEADER_MAX - sum(len(p) for p in prims)
        )
        limit = self.config.retransmit_limit(self._num_live())
        extra = self.broadcasts.take(budget, limit)
        if prims or extra:
            self._out.append(Send(addr, compound(prims + extra)))

    def broadcast(self, msg: Alive | Suspect | Dead) -> None:
        """Queue news about ``msg.node`` (replacing older news about it)."""
        self.broadcasts.push(msg.node, encode(msg))

    def set_straight(self, m: Member | None, incarnation: int, informer: Address | None,
                     me: str, gone_too: bool = False) -> None:
        """A peer relayed an accusation older than what we hold about ``m``
        (another member or us): send it what we hold, directly. The newer
        alive: it missed the refutation, and may count stale accusations as
        confirmations of its own suspicion, or (a buddy-system prober) let it
        run out. With ``gone_too`` (a suspicion), the death of a member we
        hold dead or left at that incarnation or later: it missed the death
        (cut off or paused while it spread), and nobody confirms a suspicion
        of a member the others hold dead, so it would wait out the longest
        timeout, finding the crash only when its own probe comes round."""
        if informer is None or m is None:
            return
        if m.status is Status.ALIVE and incarnation < m.incarnation:
            self.send(informer, [encode(Alive(m.incarnation, m.name, m.addr, m.meta))])
        elif gone_too and m.status.gone and incarnation <= m.incarnation:
            sender = m.name if m.status is Status.LEFT else me
            self.send(informer, [encode(Dead(m.incarnation, m.name, sender))])
