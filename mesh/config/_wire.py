"""The wire's defaults: datagram and body sizes, sealing, replay windows,
and every bound a peer or a user could push, each with its reason."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WireDefaults:
    """The wire: frames, sealing, and every bound a peer or a user could push.
    Part of :class:`mesh.config.Config`, which is what code reads."""

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
