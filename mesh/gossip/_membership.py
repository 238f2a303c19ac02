"""SWIM membership with Lifeguard, as a sans-IO state machine.

:class:`Membership` is the only stateful object of the gossip layer. It does
no I/O and reads no clock: time comes in as ``now`` and randomness from the
``rng`` it was given. Datagrams come in through :meth:`Membership.receive`,
timers through :meth:`Membership.tick`; both return what to send. The caller
(see ``_driver.py``) asks :meth:`Membership.next_deadline` when to tick next.

The protocol, step by step, is in the package docstring (:mod:`mesh.gossip`).
"""

from __future__ import annotations

import random
from typing import Any

from mesh.config import Config
from mesh.gossip._awareness import Awareness
from mesh.gossip._dissemination import Dissemination
from mesh.gossip._events import EventKind, MemberEvent, PushPull, Send
from mesh.gossip._intern import intern_member
from mesh.gossip._merge import Entry, MergeReport, Merges
from mesh.gossip._messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Message,
    Nack,
    Ping,
    Suspect,
    check_row,
    check_table,
    compound,
    decode_compound,
    encode,
)
from mesh.gossip._probe import Prober
from mesh.gossip._state import Address, Member, Status
from mesh.gossip._suspicion import Suspicion, Suspicions
from mesh.gossip._table import MemberTable, check_meta
from mesh.metrics import Metrics


class Membership:
    """One node's view of the cluster and its SWIM/Lifeguard protocol state.

    Not thread-safe and not re-entrant; the driver calls it from one task.
    Every method that takes ``now`` expects it never to go backwards.
    """

    def __init__(
        self,
        name: str,
        addr: Address,
        config: Config,
        rng: random.Random,
        now: float,
        meta: dict[str, Any] | None = None,
        incarnation: int = 0,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.addr = addr
        self.config = config
        self.metrics = metrics if metrics is not None else Metrics()
        self._rng = rng
        meta = dict(meta or {})
        check_meta(meta, config.max_meta_bytes)
        me = Member(name, addr, incarnation, Status.ALIVE, meta)
        self._table = MemberTable()
        self._members = self._table.members  # read here; written by the table only
        self._table.put(me)
        self._suspicions = Suspicions()
        self._awareness = Awareness(config.awareness_max_multiplier)
        self._events: list[MemberEvent] = []
        self._out: list[Send | PushPull] = []
        self._spread = Dissemination(config, rng, self._table, self._out, self.num_live)
        self._broadcasts = self._spread.broadcasts
        self._send = self._spread.send
        self._broadcast = self._spread.broadcast
        self._seq = 0
        self._leaving = False
        self._prober = Prober(
            name, config, self.metrics, rng, self._awareness, self._members,
            send=self._send, suspect=self._on_suspect, live_peers=self._live_peers,
            next_seq=self._next_seq, next_probe=now + rng.random() * config.probe_interval)
        self._next_gossip = now + rng.random() * config.gossip_interval
        # A fresh node syncs early, see Config.fresh_syncs.
        delays = [f * (1 + rng.random()) * config.probe_interval for f in config.fresh_syncs]
        self._next_push_pull = now + (delays[0] if delays else config.push_pull_interval)
        self._early_syncs = delays[:0:-1]  # the rest, popped in order
        self._next_reap = now + 1.0
        # Push-pull tables merged in slices (pending work, reports for the log).
        # check_row is looked up when called, so that sim.mutants can plant a bug in it.
        self.merges = Merges(config, self._members, self.metrics, self._events,
                              lambda row, known, limits: check_row(row, known, limits, name),
                              self._apply_row)
        self._broadcast(Alive(incarnation, name, addr, meta))

    # ------------------------------------------------------------------ views
    @property
    def local(self) -> Member:
        """Our own entry."""
        return self._members[self.name]

    @property
    def health_score(self) -> int:
        """Lifeguard's local health score: 0 is healthy."""
        return self._awareness.score

    @property
    def leaving(self) -> bool:
        return self._leaving

    def get(self, name: str) -> Member | None:
        return self._members.get(name)

    def members(self) -> list[Member]:
        """Every member we know, ourselves included, sorted by name."""
        return list(map(self._members.__getitem__, self._table.names()))

    def alive(self) -> list[Member]:
        """Members that are alive or suspect (not yet declared dead), ourselves
        included unless we are leaving, sorted by name."""
        return [m for m in self.members() if not m.status.gone]

    def num_live(self) -> int:
        """Members that are alive or suspect, ourselves included."""
        return len(self._live_peers()) + (0 if self._leaving else 1)

    def drain_events(self) -> list[MemberEvent]:
        """Events since the last call, in the order they happened."""
        events = self._events[:]
        self._events.clear()  # the same list: push-pull merges append to it too
        return events

    def local_state(self) -> list[Member]:
        """The whole table, for a push-pull exchange: one
        ``(name, host, port, incarnation, status, meta)`` row per member (a
        :class:`Member` is that row), by name."""
        return self.members()

    def next_deadline(self) -> float:
        """When :meth:`tick` next has work to do (at once while a push-pull
        table is pending: one slice of it per tick)."""
        d = min(self._prober.next_deadline(), self._next_push_pull, self.merges.due)
        # Gossip rounds and reaping only matter when there is something to
        # spread or forget; an idle node then wakes about once per probe.
        if len(self._broadcasts):
            d = min(d, self._next_gossip)
        if self._table.gone_names:
            d = min(d, self._next_reap)
        if self._suspicions:
            d = min(d, self._suspicions.next_deadline())
        return d

    # ----------------------------------------------------------------- inputs
    def receive(self, body: Any, src: Address, now: float) -> list[Send | PushPull]:
        """Handle one decoded datagram body from ``src``. Raises
        :class:`WireError` if it is not a valid compound message; nothing is
        applied in that case."""
        for msg in decode_compound(body, self._members, self.name, self.config):
            self._dispatch(msg, src, now)
        return self._flush()

    def tick(self, now: float) -> list[Send | PushPull]:
        """Run every timer that is due at ``now``, and one slice of a pending
        push-pull table."""
        if self.merges:
            self.merges.step(now)
        for name in self._suspicions.expired(now):
            self._suspicion_expired(name, now)
        self._prober.expire_relays(now)
        if not self._leaving:
            self._prober.tick(now)
        if now >= self._next_gossip:
            self._spread.gossip(now)
            self._next_gossip = now + self.config.gossip_interval
        if now >= self._next_push_pull:
            # The early syncs of a fresh node repair its own view, so they
            # count as part of joining: what they teach it is news to it only.
            early = bool(self._early_syncs)
            if early:
                self._next_push_pull = now + self._early_syncs.pop()
            else:
                self._next_push_pull = now + self.config.push_pull_period(self.num_live())
            peers = self._live_peers()
            if peers and not self._leaving:
                target = self._members[self._rng.choice(peers)]
                self._out.append(PushPull(target.addr, join=early))
        if now >= self._next_reap:
            self._table.reap(now - self.config.dead_reclaim)
            self._next_reap = now + 1.0
        return self._flush()

    def merge_remote(self, state: Any, now: float, bootstrap: bool = False,
                     src: Address | None = None) -> None:
        """Apply a peer's table from a push-pull (``src``: the peer, for the
        log). Raises :class:`WireError` if its shape is bad. A table of up to
        ``push_pull_merge_slice`` rows is applied at once; a larger one one
        slice per :meth:`tick`, by the rule of :mod:`mesh.gossip._merge`.
        ``bootstrap``: the answer to our own join. What it lists is news to us
        only, so above ``push_pull_scale_threshold`` members it is not
        re-broadcast (a mass start would cost O(N^2) messages); below, every
        spreader matters and costs little, as in memberlist."""
        check_table(state, self.config)
        quiet = bootstrap and len(state) > self.config.push_pull_scale_threshold
        self.merges.add(state, now, quiet, MergeReport(len(state), src, bootstrap))

    def _apply_row(self, row: Entry, quiet: bool, now: float) -> None:
        name, addr, inc, status, meta = row
        if status is Status.ALIVE:
            self._on_alive(Alive(inc, name, addr, meta), now, quiet=quiet)
        elif status is Status.LEFT:
            self._on_dead(Dead(inc, name, name), now)
        elif name in self._members:
            # A remote suspicion or death may be stale: suspect it and let it
            # refute. One we do not know stays unknown (as in memberlist): we
            # may have declared it dead and forgotten it.
            self._on_suspect(Suspect(inc, name, self.name), now)

    def leave(self, now: float) -> list[Send | PushPull]:
        """Leave gracefully: tell every live peer directly and queue the news
        for gossip. After this we stop probing; the driver should keep
        gossiping for a moment so the news spreads, then stop."""
        if self._leaving:
            return []
        self.merges.settle(self.name, now)
        me = self.local
        self._leaving = True
        self._table.put(me.with_(status=Status.LEFT))
        msg = encode(Dead(me.incarnation, self.name, self.name))
        self._broadcasts.push(self.name, msg)
        for name in self._live_peers():
            self._send(self._members[name].addr, [msg])
        return self._flush()

    def set_meta(self, meta: dict[str, Any], now: float) -> None:
        """Replace our metadata; peers learn it by gossip (it raises our
        incarnation, so the new value wins everywhere)."""
        meta = dict(meta)
        check_meta(meta, self.config.max_meta_bytes)
        self.merges.settle(self.name, now)
        me = self.local
        new = me.with_(incarnation=me.incarnation + 1, meta=meta)
        self._table.put(new)
        self._broadcast(Alive(new.incarnation, self.name, self.addr, meta))

    # --------------------------------------------------------------- handlers
    def _dispatch(self, msg: Message, src: Address, now: float) -> None:
        match msg:
            case Ping():
                self._prober.on_ping(msg, src)
            case IndirectPing():
                self._prober.on_indirect(msg, src, now)
            case Ack():
                self._prober.on_ack(msg)
            case Nack():
                self._prober.on_nack(msg)
            case Alive():
                self._on_alive(msg, now)
            case Suspect():
                self._on_suspect(msg, now, informer=src)
            case Dead():
                self._on_dead(msg, now, informer=src)

    def _on_alive(self, a: Alive, now: float, quiet: bool = False) -> None:
        self.merges.settle(a.node, now)  # its pending push-pull rows first
        if a.node == self.name:
            me = self.local
            if self._leaving:
                return
            if a.incarnation > me.incarnation or (
                a.incarnation == me.incarnation and (a.addr != me.addr or a.meta != me.meta)
            ):
                self._refute(a.incarnation)
            return
        old = self._members.get(a.node)
        if old is not None and a.incarnation <= old.incarnation:
            return
        new = intern_member(Member(a.node, a.addr, a.incarnation, Status.ALIVE, a.meta))
        if old is None or old.status.gone:
            kind: EventKind | None = EventKind.JOIN
        elif old.status is Status.SUSPECT or old.addr != new.addr or old.meta != new.meta:
            kind = EventKind.UPDATE
        else:
            kind = None
        self._set(new, now, kind)
        self._suspicions.pop(a.node)
        if not (quiet and old is None):
            self._broadcast(a)

    def _on_suspect(self, s: Suspect, now: float, informer: Address | None = None) -> None:
        self.merges.settle(s.node, now)  # its pending push-pull rows first
        if s.node == self.name:
            return self._accused(s.incarnation, informer)
        m = self._members.get(s.node)
        if m is None or s.incarnation < m.incarnation or m.status.gone:
            self._spread.set_straight(m, s.incarnation, informer, self.name, gone_too=True)
            return
        if m.status is Status.SUSPECT and s.incarnation == m.incarnation:
            # A confirmation may shrink the timer to a moment already past; the
            # suspect we tell below still gets a probe timeout to answer.
            if self._suspicions.confirm(s.node, s.sender, now + self.config.probe_timeout):
                self._broadcast(s)
                self._tell_suspect(m)
            return
        self._set(m.with_(incarnation=s.incarnation, status=Status.SUSPECT), now, EventKind.SUSPECT)
        n = self.num_live()
        k = self.config.suspicion_mult - 2
        if n - 2 < k:
            k = 0  # too few members to expect independent confirmations
        lo = self.config.suspicion_timeout(n)
        hi = self.config.suspicion_max_timeout_mult * lo
        self._suspicions.start(s.node, Suspicion(now, s.sender, k, lo, hi))
        self._broadcast(s)
        if s.sender != self.name:
            self._tell_suspect(m.with_(incarnation=s.incarnation))

    def _tell_suspect(self, m: Member) -> None:
        """We suspect ``m`` on others' word, or others just confirmed our
        suspicion: tell ``m`` directly, so that it refutes to us (or sends the
        alive we missed), rather than hope our own probe reaches it before
        confirmations from nodes cut off from it shrink the timer. Sent alone,
        so no queued broadcast spends a transmission on a member that may not hear."""
        self._out.append(Send(m.addr, compound([encode(Suspect(m.incarnation, m.name,
                                                               self.name))])))

    def _on_dead(self, d: Dead, now: float, informer: Address | None = None) -> None:
        self.merges.settle(d.node, now)  # its pending push-pull rows first
        if d.node == self.name:
            return self._accused(d.incarnation, informer)
        m = self._members.get(d.node)
        if m is None or d.incarnation < m.incarnation:
            self._spread.set_straight(m, d.incarnation, informer, self.name)
            return
        status = Status.LEFT if d.sender == d.node else Status.DEAD
        if m.status.gone and (m.status >= status or d.incarnation < m.incarnation):
            return
        kind = EventKind.LEFT if status is Status.LEFT else EventKind.DEAD
        self._set(m.with_(incarnation=d.incarnation, status=status), now, kind)
        self._suspicions.pop(d.node)
        self._broadcast(d)

    def _accused(self, incarnation: int, informer: Address | None) -> None:
        """Refute an accusation about us, or set its relayer straight if we did."""
        if not self._leaving and incarnation >= self.local.incarnation:
            self._refute(incarnation, informer)
        elif not self._leaving:
            self._spread.set_straight(self.local, incarnation, informer, self.name)

    def _refute(self, incarnation: int, informer: Address | None = None) -> None:
        """Raise our incarnation past an accusation and spread the news. The
        member that told us (with the buddy system, usually the accuser, whose
        timer decides) gets the refutation at once rather than by chance."""
        me = self.local
        new = me.with_(incarnation=max(incarnation, me.incarnation) + 1, status=Status.ALIVE)
        self._table.put(new)
        self._awareness.apply(+1)
        self.metrics.inc("gossip_refutations")
        self._broadcast(Alive(new.incarnation, self.name, self.addr, new.meta))
        if informer is not None:
            self._send(informer, [])  # carries the fresh refutation, newest first

    def _suspicion_expired(self, name: str, now: float) -> None:
        self.merges.settle(name, now)  # its pending push-pull rows first
        self._suspicions.pop(name)
        m = self._members.get(name)
        if m is None or m.status is not Status.SUSPECT:
            return
        self._on_dead(Dead(m.incarnation, name, self.name), now)

    # ------------------------------------------------------------- bookkeeping
    def _set(self, member: Member, now: float, kind: EventKind | None) -> None:
        self._table.set(member, now)
        if kind is not None:
            self._events.append(MemberEvent(kind, member, self.merges.active))

    def _live_peers(self) -> list[str]:
        """Names of alive and suspect peers, sorted. Do not modify."""
        return self._table.live

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _flush(self) -> list[Send | PushPull]:
        out = self._out[:]
        self._out.clear()
        return out
