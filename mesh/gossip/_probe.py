"""Probing, the failure detector half of SWIM with Lifeguard's refinements.

Every ``probe_interval`` (stretched by local health) a node pings the next
member of a shuffled round-robin order. With no ack within ``probe_timeout``
it asks ``indirect_checks`` peers to ping the target for it; they forward the
ack, or send a nack when none came (Lifeguard: a prober that hears neither
acks nor nacks learns that its own links are the trouble, and its health score
rises). With no ack by the end of the interval the target is suspected. When
probing a suspect, the suspicion goes in the same packet (the buddy system),
so the suspect learns of it at once and can refute.

:class:`Prober` is a component of :class:`~mesh.gossip._membership.Membership`,
kept here so that each concept has its own file: the probe in flight, the
relays this node runs for others, and the handlers of ping, ack, nack and
indirect ping. It does no I/O and reads no clock either.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mesh.config import Config
from mesh.gossip._awareness import Awareness
from mesh.gossip._messages import Ack, IndirectPing, Nack, Ping, Suspect, encode
from mesh.gossip._state import Address, Member, Status
from mesh.metrics import Metrics


@dataclass(slots=True)
class _Probe:
    seq: int
    target: str
    direct_deadline: float
    acked: bool = False
    indirect_sent: bool = False
    expected_nacks: int = 0
    nacks: int = 0


@dataclass(slots=True)
class _Relay:
    requester: Address
    seq: int
    deadline: float


class Prober:
    """The probe in flight and the relays run for others, over collaborators
    given explicitly: the member table (read only), the Lifeguard awareness
    score, the runtime's rng, and the membership's ``send``, ``suspect``,
    ``live_peers`` and ``next_seq``."""

    def __init__(self, name: str, config: Config, metrics: Metrics, rng: random.Random,
                 awareness: Awareness, members: Mapping[str, Member], *,
                 send: Callable[[Address, list[bytes]], None],
                 suspect: Callable[[Suspect, float], None],
                 live_peers: Callable[[], list[str]],
                 next_seq: Callable[[], int], next_probe: float) -> None:
        self.name = name
        self.config = config
        self.metrics = metrics
        self._rng = rng
        self._awareness = awareness
        self._members = members
        self._send = send
        self._suspect = suspect
        self._live_peers = live_peers
        self._next_seq = next_seq
        self._probe: _Probe | None = None
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._next_probe = next_probe
        self._relays: dict[int, _Relay] = {}
        """By seq; deadlines are now + a constant, so this order is also theirs."""

    def next_deadline(self) -> float:
        """When :meth:`tick` or :meth:`expire_relays` next has work to do."""
        d = self._next_probe
        probe = self._probe
        if probe is not None and not probe.acked and not probe.indirect_sent:
            d = min(d, probe.direct_deadline)
        if self._relays:
            d = min(d, next(iter(self._relays.values())).deadline)
        return d

    # --------------------------------------------------------------- handlers
    def on_ping(self, msg: Ping, src: Address) -> None:
        if msg.target != self.name:
            self.metrics.inc("gossip_ping_wrong_target")
            return
        self._send(src, [encode(Ack(msg.seq))])

    def on_indirect(self, msg: IndirectPing, src: Address, now: float) -> None:
        seq = self._next_seq()
        # Nack a little before the requester's probe period ends, so the nack
        # arrives while it still counts (Lifeguard: missing nacks mean the
        # requester's own links are the problem).
        self._relays[seq] = _Relay(src, msg.seq, now + 0.8 * self.config.probe_timeout)
        self._send(msg.target_addr, [encode(Ping(seq, msg.target))])

    def on_ack(self, msg: Ack) -> None:
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            if not probe.acked:
                probe.acked = True
                self._awareness.apply(-1)
            return
        relay = self._relays.pop(msg.seq, None)
        if relay is not None:
            self._send(relay.requester, [encode(Ack(relay.seq))])

    def on_nack(self, msg: Nack) -> None:
        probe = self._probe
        if probe is not None and probe.seq == msg.seq:
            probe.nacks += 1

    def expire_relays(self, now: float) -> None:
        """Nack, for the requester, each relay whose target did not ack in time."""
        relays = self._relays
        while relays:
            seq, relay = next(iter(relays.items()))
            if relay.deadline > now:
                break
            del relays[seq]
            self._send(relay.requester, [encode(Nack(relay.seq))])

    # ---------------------------------------------------------------- probing
    def tick(self, now: float) -> None:
        probe = self._probe
        if (
            probe is not None
            and not probe.acked
            and not probe.indirect_sent
            and now >= probe.direct_deadline
        ):
            self._send_indirect(probe)
        if now < self._next_probe:
            return
        if probe is not None and not probe.acked:
            self._probe_failed(probe, now)
        self._probe = None
        self._start_probe(now)
        self._next_probe = now + self._awareness.scale(self.config.probe_interval)

    def _start_probe(self, now: float) -> None:
        target = self._next_probe_target()
        if target is None:
            return
        seq = self._next_seq()
        prims = []
        if target.status is Status.SUSPECT:  # buddy system: tell it, so it can refute
            prims.append(encode(Suspect(target.incarnation, target.name, self.name)))
        prims.append(encode(Ping(seq, target.name)))
        deadline = now + self._awareness.scale(self.config.probe_timeout)
        self._probe = _Probe(seq, target.name, deadline)
        self._send(target.addr, prims)
        self.metrics.inc("gossip_probes")

    def _next_probe_target(self) -> Member | None:
        for _ in range(2):
            while self._probe_index < len(self._probe_order):
                name = self._probe_order[self._probe_index]
                self._probe_index += 1
                m = self._members.get(name)
                if m is not None and not m.status.gone:
                    return m
            peers = list(self._live_peers())
            if not peers:
                return None
            self._rng.shuffle(peers)
            self._probe_order, self._probe_index = peers, 0
        return None

    def _send_indirect(self, probe: _Probe) -> None:
        probe.indirect_sent = True
        target = self._members.get(probe.target)
        if target is None:
            return
        others = [n for n in self._live_peers() if n != probe.target]
        k = min(self.config.indirect_checks, len(others))
        helpers = self._rng.sample(others, k) if k else []
        probe.expected_nacks = len(helpers)
        msg = encode(IndirectPing(probe.seq, target.name, target.addr))
        for name in helpers:
            self._send(self._members[name].addr, [msg])

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        self.metrics.inc("gossip_probes_failed")
        if probe.expected_nacks > 0:
            self._awareness.apply(max(0, probe.expected_nacks - probe.nacks))
        else:
            self._awareness.apply(1)
        m = self._members.get(probe.target)
        if m is not None and not m.status.gone:
            self._suspect(Suspect(m.incarnation, m.name, self.name), now)
