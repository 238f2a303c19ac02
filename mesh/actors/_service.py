"""The actor service: the asyncio driver around :class:`~mesh.actors._core.ActorCore`.

It plugs into a :class:`mesh.node.Node` after the exec service and rides on
it: the actor records travel on the exec client and peer channels (the exec
core hands them to the handlers registered here, :meth:`ExecCore.add_handlers`)
and the messages the actor core queues go out with the exec layer's
(:meth:`ExecService.carry`). Workers are an :class:`~mesh.actors._procs.ActorWorkers`.

``/v1/actors/stats`` answers ``{"node", "hosted", "copies", "relays",
"queued", "unconfirmed", "actors": {actor: {"role", "version", "pid"}}}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesh.actors._core import CLIENT_RECORDS, ActorCore
from mesh.actors._procs import ActorProcesses, ActorWorkers
from mesh.actors._records import WorkerEvent
from mesh.addresses import format_address
from mesh.exec import ExecService
from mesh.runtime import Channel

if TYPE_CHECKING:
    from mesh.gossip import MemberEvent
    from mesh.node import Node

__all__ = ["STATS_PATH", "ActorService"]

PREFIX = "/v1/actors/"
STATS_PATH = PREFIX + "stats"


class ActorService:
    """Hosts, replicates and routes actors on one node."""

    prefix = PREFIX

    def __init__(self, workers: ActorWorkers | None = None) -> None:
        self.workers: ActorWorkers = workers if workers is not None else ActorProcesses()
        self.node: Node | None = None
        self.exec: ExecService | None = None
        self.core: ActorCore | None = None
        self._timer: Any = None
        self._view_timer: Any = None
        self._flush_pending = False
        self._stopped = False

    async def start(self, node: Node) -> None:
        self.node = node
        ex = next((s for s in node.services if isinstance(s, ExecService)), None)
        if ex is None or ex.core is None:
            raise RuntimeError("the actor service needs the exec service, started before it")
        self.exec = ex
        cfg = node.config
        self.core = core = ActorCore(ex.core.table, batch=cfg.actor_batch, grace=cfg.actor_grace,
                                     resend=cfg.actor_resend, max_payload=cfg.max_http_body // 2,
                                     max_crashes=cfg.max_task_crashes, exec_core=ex.core)
        core.wake = self._soon
        core.address = format_address(node.addr)
        if ex.data is not None:
            core.values.land = ex.data.landed  # large call results stay in the store
        core.now = node.runtime.now()
        peer = {cls: self._peer(fn) for cls, fn in core.peer_handlers().items()}
        ex.core.add_handlers(dict.fromkeys(CLIENT_RECORDS, self._client), peer)
        await self.workers.start(self._on_worker)
        self._timer = node.runtime.call_later(self._interval(), self._tick)

    def _interval(self) -> float:
        assert self.node is not None
        return min(self.node.config.actor_resend, self.node.config.exec_tick) / 2

    async def stop(self, graceful: bool) -> None:
        self._stopped = True
        for timer in (self._timer, self._view_timer):
            if timer is not None:
                timer.cancel()
        await self.workers.stop()

    # ------------------------------------------------------------- plumbing
    def _client(self, sid: int, msg: Any, raw: list) -> None:
        assert self.core is not None and self.node is not None
        self.core.now = self.node.runtime.now()
        self.core.client_message(sid, msg, raw)
        self._soon()

    def _peer(self, handler: Any) -> Any:
        def handle(msg: Any) -> None:
            assert self.core is not None and self.node is not None
            self.core.now = self.node.runtime.now()
            handler(msg)
            self._soon()
        return handle

    def _soon(self) -> None:
        """Worker effects queued inside the exec core's input go to the
        workers now (its messages go out with the exec core's own effects);
        a view that changed is taken in right after the input."""
        assert self.core is not None
        work = self.core.take_work()
        if work:
            self.workers.carry(work)
        if (not self._flush_pending and self.node is not None
                and self.core.t.ring is not self.core._ring):
            self._flush_pending = True
            self.node.runtime.call_later(0.0, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._stopped or self.core is None or self.exec is None:
            return
        core = self.core
        if core.t.ring is not core._ring:
            core.view_changed(self.node.runtime.now())  # type: ignore[union-attr]
        self.exec.carry(self.exec.core.flush())  # type: ignore[union-attr]
        self.workers.carry(core.take_work())

    def _on_worker(self, ev: WorkerEvent) -> None:
        if self._stopped or self.core is None:
            return
        self.core.now = self.node.runtime.now()  # type: ignore[union-attr]
        self.core.worker_event(ev)
        self._flush()

    def _tick(self) -> None:
        if self._stopped or self.core is None or self.node is None:
            return
        self.core.tick(self.node.runtime.now())
        self._flush()
        self._timer = self.node.runtime.call_later(self._interval(), self._tick)

    def on_member_event(self, event: MemberEvent) -> None:
        """After the exec service rebuilt its view (its timer runs first)."""
        if self.core is not None and not self._stopped and self._view_timer is None:
            self._view_timer = self.node.runtime.call_later(0.0, self._view)  # type: ignore

    def _view(self) -> None:
        self._view_timer = None
        self._flush()

    # ------------------------------------------------------------- handlers
    async def handle_request(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.node is None or self.core is None:
            return 503, b""
        if path != STATS_PATH:
            return 404, b""
        self.node.http_codec.open(body)
        core = self.core
        hosted = core.host.hosted.values()
        stats: dict[str, Any] = {
            "node": self.node.name, "hosted": len(core.host.hosted),
            "copies": len(core.host.copies), "relays": len(core.entry.relays),
            "queued": sum(len(h.queue) for h in hosted),
            "unconfirmed": sum(len(h.unconfirmed) for h in hosted)}
        actors: dict[str, Any] = {}
        pid = getattr(self.workers, "pid", None)
        for name, h in sorted(core.host.hosted.items()):
            actors[name] = {"role": "host", "version": list(h.copy.version),
                            "pid": pid(name) if pid else None}
        for name, c in sorted(core.host.copies.items()):
            actors[name] = {"role": "replica", "version": list(c.version), "pid": None}
        stats["actors"] = actors
        return 200, self.node.http_codec.seal(stats)

    async def handle_channel(self, path: str, channel: Channel) -> None:
        await channel.close()

