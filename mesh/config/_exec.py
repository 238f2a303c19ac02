"""Placement and execution defaults: the ring, tasks, their timers and
limits, stealing, and the worker pool, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExecDefaults:
    """Placement, execution, its timers and limits, and the worker pool.
    Part of :class:`mesh.config.Config`, which is what code reads."""

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
    actor_route_timeout: float = 3.0
    """Seconds a client's session straight to an actor's host may stay silent
    (no connect, no answer to its pings, sent every third of it) while calls
    wait on it, before they go through the client's own node, which relays
    them (mesh.actors._direct). Three entry resends: a live node answers a
    ping at once, however long the actor's method runs."""

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

    lazy_flush: float = 0.05
    """Seconds a peer message nothing waits on (a release's fan-out to the
    holders of a result) may wait for another frame to the same peer to ride
    on. Under request/response load one rides on the next round trip's frame
    instead of costing a frame (and a wake-up of the peer) of its own; the
    price is that a released value is freed up to this much later."""

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

    heap_freeze_joins: int = 1_000
    """In a ``mesh join`` process, a push-pull merge that adds at least this
    many members ends with ``gc.freeze()``: the new table lives as long as
    the members do, and CPython's full collection (one unsliceable pass over
    every tracked object) would otherwise rescan it, about 50 ms in one loop
    turn after a 10,000-member merge (``full_gc_ms`` of ``python -m
    bench.merge_stall``). The price: cyclic garbage alive at that moment is
    never collected (a one-off, and small: the exec and gossip cores make
    no cycles per message)."""

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
