"""Every tunable default of mesh, in one place, with the reason for each value.

The gossip defaults start from HashiCorp memberlist's ``DefaultLANConfig``
(probe every 1 s, probe timeout 500 ms, suspicion multiplier 4, 3 indirect
probes, gossip to 3 peers every 200 ms). Where mesh differs, the reason is
written beside the value.

Failure-detection time, documented (``mesh members`` users rely on it):
with N members, a crashed node is first probed within ``probe_interval`` of
any given member (on average N/N = one probe round across the cluster, since
members probe in randomised round-robin), marked ``suspect`` after
``probe_timeout`` plus the indirect-probe round, and marked ``dead`` once the
suspicion timeout runs out. The suspicion timeout starts at
``suspicion_max_timeout_mult * suspicion_timeout(N)`` and shrinks towards
``suspicion_timeout(N) = suspicion_mult * max(1, log10(N)) * probe_interval``
as independent confirmations arrive (Lifeguard). For N <= 10 that is 4 s at
least, 24 s at most; see :func:`Config.detection_bound`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Config:
    """Tunables for one node. Frozen: make a changed copy with :meth:`with_`."""

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

    # --- join ----------------------------------------------------------------
    join_retry_initial: float = 0.5
    """First delay before retrying seeds that did not answer."""

    join_retry_max: float = 5.0
    """Cap on the join retry backoff, so a node whose seeds start late joins within
    a few seconds of them coming up."""

    # --- wire ----------------------------------------------------------------
    max_datagram: int = 1400
    """Largest UDP datagram we send or accept, header included. Fits in one
    Ethernet frame (1500 MTU less IP/UDP headers and headroom for tunnels), so
    datagrams are never fragmented."""

    max_http_body: int = 8 * 1024 * 1024
    """Largest HTTP body or websocket frame we accept. Bounds memory per request;
    task payloads larger than this must be split by the caller."""

    max_meta_bytes: int = 512
    """Largest encoded member metadata. Metadata rides inside alive messages and
    has to fit into one datagram together with the other fields."""

    # --- wire security and bounds (every number a peer or user could push) -----
    replay_window: float = 60.0
    """Seconds a frame may lag the newest timestamp its sender showed us (after
    its clock offset) before it is dropped as stale. Longer than any queueing
    delay of a live connection; short enough that a captured frame is useless
    a minute later."""

    max_clock_skew: float = 120.0
    """Largest offset between a sender's clock and ours that we accept from a
    sender we hold no replay state for. NTP keeps hosts within milliseconds;
    two minutes tolerates a host without it and still bounds how old a frame
    replayed at a restarted receiver can be."""

    replay_counter_window: int = 8192
    """How far out of order (in counter values) a sender's frames may arrive.
    A sender's frames to us travel on a few connections and reorder by a
    handful; 8,192 bits cost 1 KiB per sender."""

    replay_max_senders: int = 4096
    """Senders whose replay windows a node remembers (least recently heard are
    forgotten). Covers every member and client of a large mesh; 4 MiB at most."""

    max_incarnation: int = 2**62
    """Incarnations above this are dropped on the wire. A node refutes with at
    most this plus one, far below the 2**63 a signed 64-bit field holds, so
    no sender can push a member to where it could never refute."""

    max_workers: int = 256
    """Largest ``workers`` a member may announce (``mesh join --workers`` and on
    the wire). Placement gives a member ``placement_vnodes * workers`` ring
    points: 256 keeps one member's ring build within a few milliseconds."""

    max_meta_int: int = 2**31
    """Every number in member metadata lies within +-this. Metadata holds small
    counts (workers, queue depth); a bound keeps arithmetic on them cheap."""

    max_members: int = 4096
    """Largest push-pull table accepted or sent. Above the sizes mesh targets
    (a few hundred nodes; the simulator's 1,000); a larger table is dropped
    whole, so a peer cannot make us hold or gossip an unbounded member list."""

    unauth_body: int = 64 * 1024
    """Largest HTTP body read from a sender that has not authenticated (no
    admission token). Small requests (a query) fit; anything larger must
    authenticate before a byte of it is buffered."""

    handshake_timeout: float = 5.0
    """Seconds a connection may stay open without authenticating; then it is
    closed. A real peer authenticates within a round trip."""

    idle_timeout: float = 30.0
    """Seconds an authenticated connection may stay silent before it is
    closed. Channels are never silent that long (``ws_heartbeat``); an HTTP
    keep-alive connection is reopened on demand (aiohttp's client drops its
    idle ones after 15 s)."""

    ws_heartbeat: float = 10.0
    """Seconds between the server's pings on a channel: a live peer answers,
    so its channel is never idle; a dead one is noticed."""

    body_timeout: float = 30.0
    """Seconds to receive a whole admitted body. 8 MiB at 2 Mbit/s fits; a
    sender that stalls mid-body frees its buffer after this."""

    max_connections: int = 512
    """Open HTTP connections per node. Half the common 1,024 file descriptors,
    so the node keeps room for its own sockets, workers and files."""

    max_connections_per_source: int = 256
    """Open connections from one source address. Every node, client and
    command on a host shares its address (all of them on loopback), so this
    is generous; it stops one host from taking every slot."""

    udp_recv_buffer: int = 4 * 1024 * 1024
    """Bytes asked of the kernel for the gossip socket's receive buffer (it
    caps the request at net.core.rmem_max): a burst of thousands of
    1,400-byte datagrams, e.g. a mass join, waits there instead of being lost."""

    # --- placement -----------------------------------------------------------
    placement_vnodes: int = 64
    """Ring points per unit of member weight. Must be the same on every node (it
    changes every preference list). With 8 probes per key, 64 keeps the largest
    share within about 10% of the mean at 1,000 members and builds the ring in
    under 100 ms (figures in docs/placement.md)."""

    placement_probes: int = 8
    """Probe points per key (1 to 8), also cluster-wide. More probes even out the
    load, fewer make lookups faster; 8 buys the balance of a ~1,000-vnode plain
    ring at a sixteenth of its size."""

    placement_max_points: int = 16384
    """Most ring points a view gets, cluster-wide (past it every member's
    ``placement_vnodes * workers`` is scaled down alike): whatever members and
    workers peers announce, a build stays 40-80 ms of CPU (4,096 members of 256
    workers would be 67 M points). Up to 256 members of one worker, or 32 of
    eight, it changes nothing; 1,000 members get 16 points each, the largest
    share 1.13 times the mean."""

    placement_build_slice: int = 2048
    """Ring points a slice of a view build handles, one slice per loop turn, the
    old ring serving meanwhile: a few ms each (``python -m bench.ring_stall``)."""

    # --- execution -----------------------------------------------------------
    replicas: int = 2
    """How many nodes hold each stored result (capped by the number of alive
    nodes). Two copies survive any single node failure at half the memory of
    three; raise it with ``--replicas`` for more failures at once."""

    max_task_crashes: int = 3
    """A task that kills its worker process this many times is failed with
    ``KilledWorker`` instead of being retried forever (Dask uses 3 as well)."""
    actor_batch: int = 256  # calls per worker round trip and state replication (docs/actors.md)
    actor_grace: float = 3.0  # s a host keeps calls for an actor whose state may be on its way
    actor_resend: float = 1.0  # s an entry node waits for an actor call's answer, then relays again

    # --- execution timers and limits -----------------------------------------
    exec_tick: float = 5.0
    """Seconds between the exec layer's housekeeping rounds: ask again for
    results waited on since the last round, resend unacknowledged stores,
    expire orphans. Lost messages only happen when a channel breaks, so a
    slow round costs nothing in the common case."""

    orphan_grace: float = 60.0
    """Seconds a result or task whose every subscriber died is kept, so that a
    client whose entry node died can re-attach through another node (it
    reconnects within its reconnect timeout, 30 s by default)."""

    subscription_recheck: float = 15.0
    """Seconds between a holder's asking if its keys' subscribers still need them (docs/sim.md)."""

    stolen_patience: int = 3
    """Exec ticks a stolen task may go without a result before its owner runs
    it itself (the thief may never have received it)."""

    lineage_patience: int = 1
    """Ticks more a lost kept result waits for a late hand-over before a rerun."""

    steal_interval: float = 0.2
    """Seconds between looks at our own queue (published in gossip metadata as
    ``queue``) and, when idle, at our peers' queues to steal from. The
    gossip interval: a fresher depth could not travel faster anyway."""

    steal_min_queue: int = 4
    """A peer is worth stealing from once it has at least this many queued
    tasks; below that the round trip costs more than it saves."""

    client_window: int = 4096
    """Tasks one client may have in flight through its entry node (its
    credit). Keeps a node's memory per client bounded while hiding the round
    trip: 4,096 no-op tasks are about 0.2 s of work on a 2-worker node."""

    client_keepalive_interval: float = 2.0
    """Seconds between a client's pings to its entry node while tasks are
    pending."""

    client_keepalive_timeout: float = 10.0
    """Seconds of silence from the entry node after which a client with tasks
    pending moves to another node (a crashed machine or a partition closes
    no connection). Five keepalives: one lost datagram is no reason."""

    exec_connect_timeout: float = 2.0
    """Seconds to open an exec channel to a peer before retrying with backoff."""

    rebalance_slice: int = 500
    """Held keys examined per slice of a rebalancing pass (under 10 ms of CPU),
    so a view change over many keys never stalls gossip."""

    message_slice: int = 512
    """Messages of one incoming exec frame handled before yielding to the event
    loop, so a frame of thousands of tasks does not delay gossip acks."""

    frame_target: int = 1 << 20
    """Bytes of exec messages after which an outgoing batch is cut into
    another frame: large enough to amortise sealing, small enough to keep
    the receiver's loop responsive."""

    # --- the worker pool (mesh.exec._pool) -----------------------------------
    pool_depth: int = 2
    """Batches in flight per worker process: while one runs, the next waits in
    the pipe, so the pipe's round trip is hidden behind the running batch."""

    pool_max_batch: int = 256
    """Most tasks in one batch to a worker. Tiny tasks travel this many at a
    time (one pipe write, one read); more would only delay the first result."""

    pool_batch_seconds: float = 0.002
    """Measured run time a batch is sized to (``seconds // per-task time``,
    within 1..``pool_max_batch``): a few milliseconds amortise the pipe, yet
    an idle worker, here or on a thief, never waits long for a share."""

    gc_threshold: int = 20_000
    """Allocations between a node's GC passes (CPython's 700 costs a busy node ~15% CPU)."""

    pool_untimed_batch: int = 2
    """Tasks per batch of a function the pool has not timed yet: it may be
    slow, so one or two at a time until its first batch comes back."""

    pool_timed_functions: int = 256
    """Functions whose run time the pool remembers (least recently used are
    forgotten; an unknown one is sent one task at a time until timed)."""

    pool_max_early_deaths: int = 3
    """Workers that die before finishing any batch, in a row, after which the
    pool stops replacing them and logs why (they cannot start at all: a
    broken interpreter or environment); one or two may be bad luck."""

    leave_timeout: float = 2.0
    """Seconds a leaving node gives the news to spread before it exits (ten
    gossip rounds)."""

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form settings for experiments; not read by mesh itself."""

    # --- data plane (mesh.store, mesh.exec._dataplane) ------------------------
    memory_limit: int | None = None
    """Bytes of values a node keeps in memory before it spills the least
    recently used to disk (``--memory-limit``). None: ``memory_share`` of the
    machine's RAM split among the nodes started on it
    (:func:`mesh.store.default_memory_limit`), as Dask's ``memory_limit="auto"``
    splits RAM among workers."""

    memory_share: float = 0.5
    """Share of the machine's RAM that the nodes on it give their stores. The
    other half is left to the tasks' own working memory in the workers, the
    OS and the client; Dask starts spilling at 60% of the RAM it splits."""

    spill_reserve: int = 1 << 30
    """Bytes of the spill directory's file system the store leaves free. A
    full disk stops logs, the OS and other programs, not only mesh."""

    transfer_chunk: int = 4 << 20
    """Bytes per chunk of a value moving between nodes. Per-chunk costs (a
    frame, a seal, a message) stay under 1% of copying 4 MiB, and a small
    message waits behind at most one chunk: about 7 ms at 600 MB/s. Well
    under ``max_http_body``."""

    transfer_window: int = 4
    """Chunks a sender may have in flight before the receiver grants more
    credit: 16 MiB, more than a LAN carries in one round trip at 1 GB/s
    (10 MB at 10 ms), while bounding a receiver's unwritten chunks."""

    transfer_burst: int = 16
    """Small messages the interleaver sends between two chunks when both are
    waiting: they never wait behind more than one chunk, and a flood of them
    still leaves the transfers 1 slot in 17."""

    oob_threshold: int = 64 << 10
    """A result whose out-of-band buffers total at least this many bytes is
    kept as a :class:`mesh.store.Value` (kind ``OK_VALUE``): handed from a
    worker through a file, not the pipe, and moved between nodes as a chunked
    transfer. Below it one inline pickle in a message costs less than a file,
    a map and a transfer's round trips."""

    transfer_stall: float = 10.0
    """Seconds without a chunk before a receiver asks again or takes another source."""

    data_partition_bytes: int = 4 << 20
    """Largest pickled dataset partition: half of max_http_body (results travel inline)."""

    def with_(self, **changes: Any) -> Config:
        """Return a copy with ``changes`` applied."""
        return replace(self, **changes)

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


DEFAULT = Config()
