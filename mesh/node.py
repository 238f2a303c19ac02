"""One node of the mesh: gossip membership, the HTTP API, and services on top.

A :class:`Node` owns a :class:`~mesh.gossip.Membership`, its
:class:`~mesh.gossip.GossipDriver`, one HTTP server and the services (such as
the exec layer) that plug into it. It only uses the
:class:`~mesh.runtime.Runtime` it is given, so the simulator runs it unchanged.

HTTP API (all POST; request and reply bodies are frames sealed with
:attr:`Node.http_codec`, so a wrong or missing secret gives 401, a replayed
or stale frame 400):

* ``/v1/members`` -- ``{"self": name, "members": [member.to_dict(), ...]}``
* ``/v1/metrics`` -- ``{counter: value}``, sorted by name
* ``/v1/ring`` -- ``{"shares": {name: fraction of the key space}}``
* ``/v1/gossip/pushpull`` -- the gossip driver's full-state exchange
* ``<service.prefix>...`` -- requests and channels for that service

Every request body is opened (size, version, MAC, msgpack) before anything
else looks at it; a rejected one is answered 401 (``unauthenticated``) or 400,
counted as ``wire_dropped_<reason>`` and logged at most every few seconds.
Services therefore only ever see authenticated frames; they still get the
raw sealed frame and open it themselves. The gossip driver gets the opened
push-pull request instead, so a large table is checked and parsed once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from mesh.config import Config
from mesh.errors import WireError
from mesh.exec._ring import ShareBuilds
from mesh.gossip import PUSH_PULL_PATH, GossipDriver, Member, MemberEvent, Membership
from mesh.metrics import Metrics, RateLimitedLog
from mesh.placement import member_weight
from mesh.runtime import Address, Channel, Runtime, Server
from mesh.store import FileSpillDir, MemorySpillDir, SpillDir, default_memory_limit, spill_limit
from mesh.store._driver import NodeStore
from mesh.wire import AUTH_REASONS, Codec, Identity, KeyRing, Secrets, replay_guard
from mesh.wire._keys_peers import PeerKeys
from mesh.wire._transport import SecureRuntime

__all__ = ["MEMBERS_PATH", "METRICS_PATH", "RING_PATH", "Node", "Service"]

log = logging.getLogger("mesh.node")

MEMBERS_PATH = "/v1/members"
METRICS_PATH = "/v1/metrics"
RING_PATH = "/v1/ring"


class Service(Protocol):
    """An extension a layer above gossip plugs into a node (the exec layer is one)."""

    prefix: str
    """HTTP requests and channels whose path starts with this go to the service."""

    async def start(self, node: Node) -> None:
        """Called once the node serves HTTP and gossip runs."""

    async def stop(self, graceful: bool) -> None:
        """Called once, on leave (``graceful``) or on a hard stop."""

    async def handle_request(self, path: str, body: bytes) -> tuple[int, bytes]:
        """``body`` is the raw sealed frame, already checked to open cleanly."""

    async def handle_channel(self, path: str, channel: Channel) -> None:
        """The channel is closed when this returns."""

    def on_member_event(self, event: MemberEvent) -> None:
        """Never called concurrently; must not block."""

    # A service may also define ``async handle_get(path, headers, query) ->
    # (status, headers, body or async iterator of bytes)``: the first that does
    # gets every plain (non-websocket) GET, for read-only pages (mesh.ops).


class Node:
    """One member of the mesh. Create it inside the runtime's event loop.

    ``bind`` is where the node listens (UDP gossip and HTTP on the same port).
    ``advertise`` is the address it tells others, which they must be able to
    reach; it defaults to ``bind``. Give it when binding a wildcard address or
    behind a port mapping.
    """

    def __init__(
        self,
        runtime: Runtime,
        config: Config,
        name: str,
        bind: Address,
        seeds: Sequence[Address] = (),
        secret: Secrets = None,
        meta: dict[str, Any] | None = None,
        services: Sequence[Service] = (),
        advertise: Address | None = None,
        metrics: Metrics | None = None,
        spill: SpillDir | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.bind: Address = (bind[0], bind[1])
        self.addr: Address = self.bind if advertise is None else (advertise[0], advertise[1])
        """The address other nodes reach this one at (its member address)."""
        self.metrics = metrics if metrics is not None else Metrics()
        self.secret = secret
        # One identity for this life (its epoch is the wall clock now, above
        # any earlier life's), one key ring; a codec and replay guard per purpose.
        self.identity = Identity.named(name, runtime)
        ring = KeyRing(secret)
        self.codec = Codec(ring, config.max_datagram, purpose="datagram", source=runtime,
                           identity=self.identity, guard=replay_guard(config))
        self.http_codec = Codec(ring, config.max_http_body, purpose="http", source=runtime,
                                identity=self.identity, guard=replay_guard(config))
        # Which of our keys seals to which peer (mesh.wire._keys_peers); our
        # own key ids travel in our metadata, so every member learns them.
        self.keys = PeerKeys(ring, runtime, max_peers=config.max_members)
        meta = {**(meta or {}), "key_ids": self.keys.advertisement}
        # Every request and channel, ours and our services', is admitted by
        # token and bound to its connection (mesh.wire._transport).
        self.runtime: Runtime = SecureRuntime(runtime, self.http_codec,
                                              unauth_body=config.unauth_body,
                                              metrics=self.metrics, keys=self.keys)
        self.services: list[Service] = list(services)
        # The node's values: one store, one spill directory (``mesh join``
        # gives a FileSpillDir; the simulator and in-process tests memory).
        spill = spill if spill is not None else MemorySpillDir()
        memory = (config.memory_limit if config.memory_limit is not None
                  else default_memory_limit(1, config.memory_share))
        disk = (spill_limit(spill.path, config.spill_reserve)
                if isinstance(spill, FileSpillDir) else 1 << 62)
        self.store = NodeStore(name, spill, self.runtime, memory_limit=memory, disk_limit=disk,
                               metrics=self.metrics)
        # A life's first incarnation is its epoch in milliseconds: above
        # anything an earlier life could have refuted to, so its old alive,
        # suspect and leave messages carry no news.
        self.membership = Membership(
            name, self.addr, config, runtime.rng, runtime.now(), meta=meta, metrics=self.metrics,
            incarnation=min(self.identity.epoch // 1000, config.max_incarnation // 2),
        )
        self.driver = GossipDriver(
            self.runtime,
            config,
            self.membership,
            self.codec,
            self.http_codec,
            self.metrics,
            seeds=seeds,
            on_event=self._on_event,
            bind=self.bind,
            keys=self.keys,
        )
        self._listeners: list[Callable[[MemberEvent], None]] = []
        self._noise = RateLimitedLog(log, runtime.now)
        self._server: Server | None = None
        self._services_started: list[Service] = []
        # /v1/ring's shares, built in slices after a view change (mesh.exec._ring)
        self._shares = ShareBuilds(self.runtime.call_later, lambda: self.config)
        self._stopped = False

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Serve HTTP, start gossip (binding UDP and joining the seeds in the
        background), then start the services. On failure, whatever started is
        stopped again and the error propagates (e.g. ``OSError`` for a port in
        use)."""
        pages = next((s.handle_get for s in self.services if hasattr(s, "handle_get")), None)
        extra = {} if pages is None else {"on_get": pages}  # only the real runtime serves pages
        self._server = await self.runtime.serve(
            self.bind, self._on_request, self._on_channel, **extra
        )
        try:
            await self.driver.start()
            for service in self.services:
                await service.start(self)
                self._services_started.append(service)
        except BaseException:
            await self.stop()
            raise
        if self.bind == self.addr:
            log.info("%s listening on %s:%s", self.name, *self.addr)
        else:
            log.info("%s listening on %s:%s, reachable at %s:%s", self.name, *self.bind, *self.addr)

    async def leave(self, timeout: float = 2.0) -> None:
        """Leave gracefully, then stop: services stop (graceful), every peer is
        told we left and the news gets at most ``timeout`` seconds to spread."""
        if self._stopped:
            return
        await self._stop_services(graceful=True)
        await self.driver.leave(timeout)
        log.info("%s left the mesh", self.name)
        await self.stop()

    async def stop(self) -> None:
        """Stop at once without telling anyone (peers see a crash). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._shares.cancel()
        await self._stop_services(graceful=False)
        await self.driver.stop()
        if self._server is not None:
            await self._server.close()
        await self.store.close()

    async def _stop_services(self, graceful: bool) -> None:
        services, self._services_started = self._services_started, []
        for service in reversed(services):
            await service.stop(graceful)

    # ----------------------------------------------------------------- state
    def members(self) -> list[dict[str, Any]]:
        """Every member we know, ourselves included, sorted by name, as dicts."""
        return [m.to_dict() for m in self.membership.members()]

    def set_meta(self, meta: dict[str, Any]) -> None:
        """Merge ``meta`` into our metadata; peers learn it by gossip. Raises
        :class:`~mesh.errors.ConfigError` if the result is too large."""
        merged = {**self.membership.local.meta, **meta}
        self.membership.set_meta(merged, self.runtime.now())

    def add_listener(self, cb: Callable[[MemberEvent], None]) -> None:
        """Call ``cb`` for every membership event, after the services. Never
        called concurrently; must not block."""
        self._listeners.append(cb)

    def _on_event(self, event: MemberEvent) -> None:
        # a large mesh has N^2 events while it forms; a push-pull merge logs
        # one line for all of its events (mesh.gossip's driver)
        if not event.merged and log.isEnabledFor(logging.INFO):
            m = event.member
            log.info(
                "member %s %s at %s (incarnation %d)",
                m.name, event.kind.value, m.address, m.incarnation,
            )
        for service in self.services:
            service.on_member_event(event)
        for cb in self._listeners:
            cb(event)

    # ------------------------------------------------------------------ HTTP
    async def _on_request(self, path: str, body: bytes) -> tuple[int, bytes]:
        service = next((s for s in self.services if path.startswith(s.prefix)), None)
        try:
            # A service opens the frame itself (and only then is it marked as
            # seen); here it is only checked.
            request = self.http_codec.verify(body) if service else self.http_codec.open(body)
        except WireError as exc:
            self.metrics.inc(f"wire_dropped_{exc.reason}")
            self._noise.warning(f"http:{exc.reason}", "dropped an HTTP body for %s: %s", path, exc)
            return (401 if exc.reason in AUTH_REASONS else 400), b""
        if path == MEMBERS_PATH:
            return 200, await self.driver.seal_table({"self": self.name}, "members",
                                                     self.membership.members(), Member.to_dict)
        if path == METRICS_PATH:
            return 200, self.http_codec.seal(self.metrics.snapshot())
        if path == PUSH_PULL_PATH:
            return await self.driver.handle_push_pull(request)
        if path == RING_PATH:
            return 200, self.http_codec.seal({"shares": await self.current_ring_shares()})
        if service is not None:
            return await service.handle_request(path, body)
        self.metrics.inc("http_not_found")
        return 404, b""

    async def _on_channel(self, path: str, channel: Channel) -> None:
        for service in self.services:
            if path.startswith(service.prefix):
                await service.handle_channel(path, channel)
                return
        self.metrics.inc("channel_not_found")
        await channel.close()

    def ring_shares(self) -> dict[str, float]:
        """Each live member's share of the key space, weighted by its
        ``workers`` metadata (default 1), for the last view built: after a
        view change of a large mesh, the new view's shares are built in
        slices over the next loop turns (:meth:`current_ring_shares` waits)."""
        return self._shares.latest(self._ring_view())

    async def current_ring_shares(self) -> dict[str, float]:
        """:meth:`ring_shares` of the view live now (or a later one)."""
        return await self._shares.current(self._ring_view())

    def _ring_view(self) -> list[tuple[str, int]]:
        return [(m.name, member_weight(m.meta)) for m in self.membership.alive()]
