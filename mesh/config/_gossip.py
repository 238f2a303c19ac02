"""Membership's defaults (SWIM probing, Lifeguard suspicion and health,
dissemination, join) with their reasons, and the values derived from them."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GossipDefaults:
    """The failure detector, dissemination and join defaults, and what derives from them.
    Part of :class:`mesh.config.Config`, which is what code reads."""

    # --- probing (SWIM failure detector) -------------------------------------
    probe_interval: float = 1.0
    """Seconds between probes of one member (memberlist LAN). Smaller detects
    faster but costs N probes per interval across the cluster."""

    probe_timeout: float = 0.5
    """Seconds to wait for a direct ack before asking peers for an indirect probe
    (memberlist LAN). Well above a LAN round trip, below the probe interval so the
    indirect round fits in the same period."""

    indirect_checks: int = 3
    """Peers asked to probe a target that missed its direct ack (memberlist LAN).
    Three independent paths make one bad link unlikely to cause a suspicion."""

    # --- suspicion (Lifeguard dynamic suspicion timeout) ---------------------
    suspicion_mult: int = 4
    """Multiplier for the minimum suspicion timeout, scaled by log10(N) and the
    probe interval (memberlist LAN). Gives a suspect ~4 probe rounds to refute."""

    suspicion_max_timeout_mult: int = 6
    """The suspicion timeout starts at this many times the minimum and shrinks as
    independent confirmations arrive (Lifeguard; memberlist's value). A lone
    suspicion, possibly from an unhealthy prober, waits long; a widely confirmed
    one finishes fast."""

    # --- local health (Lifeguard awareness) ----------------------------------
    awareness_max_multiplier: int = 8
    """Upper bound on the local health multiplier that stretches our own probe
    interval and timeout when we are slow or lossy (memberlist LAN). A node that
    misses its own acks backs off instead of accusing healthy peers."""

    # --- dissemination -------------------------------------------------------
    gossip_interval: float = 0.2
    """Seconds between gossip rounds that push queued broadcasts (memberlist LAN)."""

    gossip_nodes: int = 3
    """Random peers each gossip round sends to (memberlist LAN)."""

    retransmit_mult: int = 4
    """A broadcast is retransmitted retransmit_mult * ceil(log10(N + 1)) times, the
    lambda * log(N) of the SWIM paper (memberlist LAN). Enough for every member to
    hear it with high probability while the cost grows only logarithmically."""

    gossip_to_dead: float = 30.0
    """Seconds after a member is declared dead or left during which we still
    gossip to it, so it can learn it was declared dead and refute (memberlist)."""

    dead_reclaim: float = 60.0
    """Seconds a dead or left member is remembered before it is forgotten. Long
    enough that its death reaches everyone, so nobody resurrects it from a stale
    push-pull; a later rejoin with a higher incarnation is accepted anyway."""

    push_pull_interval: float = 15.0
    """Seconds between full-state exchanges with one random peer over HTTP.
    memberlist uses 30 s on a LAN; clusters of mesh are small and a faster
    anti-entropy round heals partitions and missed broadcasts sooner at a cost of
    one request per node per interval."""

    fresh_syncs: tuple[float, ...] = (2.0, 8.0)
    """A fresh node's first full syncs come this many probe periods after it
    starts (each stretched by a random 0-100%), before the regular push-pull
    interval takes over. Its view is the likeliest to be incomplete: rumours
    sent while everyone was starting can miss it. Two, because the first often
    comes while others are still joining; what they teach is not re-broadcast.
    Measured on 30 mass joins of 200 members: the stragglers converge in
    15-17 s instead of waiting for the 60 s push-pull period."""

    push_pull_scale_threshold: int = 32
    """Above this many members the push-pull interval grows with log2(N / 32)
    (memberlist's pushPullScale): each exchange carries the whole table, so at
    1,000 members a fixed interval would make anti-entropy cost O(N^2) bytes."""

    table_pack_slice: int = 2048
    """Rows of the member table packed per event-loop turn when a node sends
    it (its push-pull request and reply, ``/v1/members``): msgpack costs about
    1 us a row, so 2,048 keep a turn near 2 ms and a table of 10,000 members
    (10 ms at once) takes five turns (``mesh.wire._tables``)."""

    push_pull_merge_slice: int = 128
    """Rows of a push-pull table checked, or applied, per event-loop turn; a
    larger table is merged in slices (``mesh.gossip._merge``). Applying a new
    member costs about 20 us with its member event and the exec layer's
    listener: 128 keep a turn within a few milliseconds (``python -m
    bench.merge_stall``), and a mesh of up to 128 members merges at once."""

    push_pull_merges_held: int = 4
    """Large push-pull tables held while one is merged in slices; more are
    shed (``gossip_push_pull_shed``). Anti-entropy runs again soon, so a shed
    table loses nothing; four bound what a node holds to four tables (16,384
    rows at ``max_members``)."""

    # --- join ----------------------------------------------------------------
    join_retry_initial: float = 0.5
    """First delay before retrying seeds that did not answer."""

    join_retry_max: float = 5.0
    """Cap on the join retry backoff, so a node whose seeds start late joins within
    a few seconds of them coming up."""

    # --- derived values ------------------------------------------------------
    def retransmit_limit(self, n: int) -> int:
        """How many times one broadcast is sent, for a cluster of ``n`` members."""
        return self.retransmit_mult * max(1, math.ceil(math.log10(n + 1)))

    def push_pull_period(self, n: int) -> float:
        """The push-pull interval for a cluster of ``n`` members."""
        if n <= self.push_pull_scale_threshold:
            return self.push_pull_interval
        extra = math.ceil(math.log2(n) - math.log2(self.push_pull_scale_threshold))
        return self.push_pull_interval * (extra + 1)

    def suspicion_timeout(self, n: int) -> float:
        """The minimum suspicion timeout for a cluster of ``n`` members."""
        return self.suspicion_mult * max(1.0, math.log10(max(1, n))) * self.probe_interval

    def detection_bound(self, n: int) -> float:
        """An upper bound, in seconds, from a crash until every healthy member has
        marked the crashed node dead, assuming no message loss: one full probe
        round to reach it, the probe and indirect-probe timeouts, the longest
        suspicion timeout, and a gossip spread of a few rounds."""
        spread = self.retransmit_limit(n) * self.gossip_interval
        return (
            self.probe_interval * 2
            + self.probe_timeout * 2
            + self.suspicion_max_timeout_mult * self.suspicion_timeout(n)
            + spread
        )
