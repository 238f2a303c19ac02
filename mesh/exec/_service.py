"""The exec service: the asyncio driver around :class:`~mesh.exec._core.ExecCore`.

It serves ``/v1/exec/`` of a :class:`mesh.node.Node` (channels and first frames:
:mod:`mesh.protocol.framing`) and ``/v1/exec/stats`` (:meth:`ExecCore.counts`,
the store's figures; ``{"key": k}`` adds where task ``k`` stands here,
``{"pending": true}`` the first keys it waits for).

Every frame is sealed and opened by its bound channel (:mod:`mesh.wire`); a
frame that fails to open or breaks the protocol closes its channel (counted,
logged). Effects go to per-destination buffers, sent as one frame per buffer
whenever the channel is free; values travel as chunked transfers between
them (:mod:`mesh.exec._dataplane`). Member events are coalesced: one view
rebuild per burst, on the next loop turn.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from mesh.addresses import format_address
from mesh.errors import WireError
from mesh.exec._core import ExecCore
from mesh.exec._dataplane import DataPlane
from mesh.exec._effects import Effect, ToPeer
from mesh.exec._executor import Executor, Outcome
from mesh.exec._outbox import Outbox
from mesh.exec._ring import Ring, ViewBuilds
from mesh.exec._steal import Stealer
from mesh.metrics import RateLimitedLog
from mesh.ops._tasklog import TaskLog
from mesh.placement import member_weight
from mesh.protocol import framing as FR
from mesh.protocol.framing import CLIENT_PATH, PEER_PATH, PREFIX, STATS_PATH
from mesh.protocol.messages import Members, ProtocolViolation, encode
from mesh.runtime import Channel, ChannelClosed, Unreachable
from mesh.store._channel import CONTROL_FRAME, drain, is_chunk_frame
from mesh.wire import unpack

if TYPE_CHECKING:
    from mesh.gossip import MemberEvent
    from mesh.node import Node

__all__ = ["CLIENT_PATH", "PEER_PATH", "STATS_PATH", "ExecService"]

log = logging.getLogger("mesh.exec")

class ExecService:
    """Runs Python tasks for clients on this node's executor and its peers'."""

    prefix = PREFIX

    def __init__(self, executor: Executor, *, window: int | None = None) -> None:
        self.executor = executor
        self._window = window
        self.window = 0
        """Credit per client: ``window`` or the node's ``Config.client_window``."""
        self.node: Node | None = None
        self.core: ExecCore | None = None
        self._links: dict[str, Outbox] = {}
        self._sessions: dict[int, Outbox] = {}
        self._next_sid = 0
        self._addrs: dict[str, tuple[str, int]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: Any = None
        self._view_timer: Any = None
        self._views: ViewBuilds | None = None  # rings built in slices (mesh.exec._ring)
        self._rebalancer: asyncio.Task[None] | None = None
        self._members: list[tuple[str, int]] = []
        self._steal_timer: Any = None
        self._stealer = Stealer()
        self._stopped = False
        self._noise: RateLimitedLog | None = None
        self._limit = 0
        self.tasklog = TaskLog()  # recent finished runs and the run rate, for mesh.ops
        self.data: DataPlane | None = None

    # ------------------------------------------------------------- lifecycle
    async def start(self, node: Node) -> None:
        self.node = node
        cfg = node.config
        self.window = self._window or cfg.client_window
        self._noise = RateLimitedLog(log, node.runtime.now)
        self._limit = node.config.max_http_body
        self.core = ExecCore(node.name, replicas=node.config.replicas,
                             max_crashes=node.config.max_task_crashes, metrics=node.metrics,
                             window=self.window, vnodes=cfg.placement_vnodes,
                             probes=cfg.placement_probes, max_points=cfg.placement_max_points,
                             orphan_grace=cfg.orphan_grace,
                             stolen_patience=cfg.stolen_patience,
                             locality_bytes=cfg.locality_bytes,
                             recheck=cfg.subscription_recheck)
        self._views = ViewBuilds.configured(node.runtime.call_later, self._view_ready, cfg)
        self.data = DataPlane(node, self.core, links=self._link, carry=self.carry,
                              takes_values=self.executor.takes_values)
        node.set_meta({"workers": self.executor.workers})
        await self.executor.start(self._on_outcomes)
        self._update_view()
        self._timer = node.runtime.call_later(cfg.exec_tick, self._tick)
        self._steal_timer = node.runtime.call_later(cfg.steal_interval, self._steal_tick)

    async def stop(self, graceful: bool) -> None:
        self._stopped = True
        if self._views is not None:
            self._views.cancel()
        for timer in (self._timer, self._steal_timer, self._view_timer):
            if timer is not None:
                timer.cancel()
        boxes = [*self._links.values(), *self._sessions.values()]
        for task in [*self._tasks, *(b.task for b in boxes if b.task is not None)]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.data is not None:
            await self.data.stop()
        await self.executor.stop()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _tick(self) -> None:
        if self._stopped or self.node is None or self.core is None:
            return
        self.carry(self.core.tick(self.node.runtime.now()))
        self.data.keep()  # type: ignore[union-attr]
        self._spawn(self.data.tick())  # type: ignore[union-attr]
        self._timer = self.node.runtime.call_later(self.node.config.exec_tick, self._tick)

    def _steal_tick(self) -> None:
        """Publish our queue depth; idle, ask for work (:mod:`mesh.exec._steal`)."""
        if self._stopped or self.node is None or self.core is None:
            return
        effects = self._stealer.tick(self.node, self.core, self.executor.capacity(), self._noise)
        self.carry(effects)
        self._steal_timer = self.node.runtime.call_later(self.node.config.steal_interval,
                                                         self._steal_tick)

    # ------------------------------------------------------------------ view
    def on_member_event(self, event: MemberEvent) -> None:
        """Coalesced: a burst of events (a push-pull full of news) costs one
        view rebuild, on the next loop turn."""
        if event.kind.value in ("dead", "left") and self.data is not None:
            self.data.peers.source_gone(event.member.name)
        if self.core is not None and not self._stopped and self._view_timer is None:
            self._view_timer = self.node.runtime.call_later(0.0, self._update_view)

    def _update_view(self) -> None:
        assert self.node is not None and self.core is not None
        self._view_timer = None
        if self._stopped:
            return
        members = []
        addrs = {}
        for m in self.node.membership.alive():
            members.append((m.name, member_weight(m.meta)))
            addrs[m.name] = m.addr
        moved = [n for n in self._links if addrs.get(n) != self._addrs.get(n)]
        self._addrs = addrs
        for name in moved:  # gone, or back at another address: reconnect lazily
            box = self._links.pop(name)
            if box.task is not None:
                box.task.cancel()
        if members == self._members:
            return  # only metadata such as queue depth changed: placement did not
        self._members = members
        assert self._views is not None
        self._views.want(members)  # the old ring serves lookups until the new one is built

    def _view_ready(self, members: list[tuple[str, int]], ring: Ring) -> None:
        assert self.node is not None and self.core is not None
        if self._stopped:
            return
        effects = self.core.set_view(members, self.node.runtime.now(), ring=ring)
        if self._rebalancer is None or self._rebalancer.done():
            self._rebalancer = self._spawn(self._rebalance())
        members_msg = encode(Members(self.member_addresses()))
        for box in self._sessions.values():
            box.push([members_msg])
        self.carry(effects)

    async def _rebalance(self) -> None:
        """Run the core's rebalancing pass in slices, yielding to the loop."""
        assert self.node is not None and self.core is not None
        while self.core.rebalancing():
            self.carry(self.core.rebalance_step(self.node.config.rebalance_slice))
            await self.node.runtime.sleep(0)
        self.carry([])

    def member_addresses(self) -> list[str]:
        return [format_address(a) for _, a in sorted(self._addrs.items())]

    # ------------------------------------------------------------- plumbing
    def carry(self, effects: list[Effect]) -> None:
        """Carry the core's effects (ours, or another layer's such as
        mesh.actors) out to their channels and feed the executor."""
        core = self.core
        assert core is not None
        data = self.data
        assert data is not None
        for eff in effects:
            if type(eff) is ToPeer:
                box = self._link(eff.dest)
                if box is None:
                    self.node.metrics.inc("exec_msgs_to_departed")  # type: ignore[union-attr]
                    continue
            else:
                box = self._sessions.get(eff.sid)
                if box is None:
                    continue
            if type(eff) is ToPeer and not eff.urgent:  # rides on the next frame
                box.push_later(data.encode(box, eff.msgs), self._flush_later)
            else:
                box.push(data.encode(box, eff.msgs))
        if core.has_ready():
            cap = self.executor.capacity(core.next_function())
            if cap > 0:
                jobs, solo = core.take_jobs(cap)
                self.tasklog.started([j[0] for j in (*jobs, *solo)], self.node.runtime.now())
                if jobs:
                    self.executor.run(data.job_inputs(jobs))
                for job in data.job_inputs(solo):
                    self.executor.run_solo(job)

    def _flush_later(self, callback: Any) -> Any:
        return self.node.runtime.call_later(self.node.config.lazy_flush, callback)  # type: ignore[union-attr]

    def _link(self, dest: str, create: bool = True) -> Outbox | None:
        """The outbox to peer ``dest`` (its sender started on demand); None
        when ``dest`` is not in the view."""
        box = self._links.get(dest)
        if box is None and create and dest in self._addrs:
            box = self._links[dest] = Outbox()
            box.task = self._spawn(self._peer_sender(dest, box))
        return box

    def _on_outcomes(self, outs: list[Outcome]) -> None:
        if self.core is None or self._stopped:
            return
        if self.data.needs_values(outs):  # type: ignore[union-attr]
            outs = self.data.outcomes(outs)  # type: ignore[union-attr]
        self.tasklog.finished(outs, self.node.runtime.now())  # type: ignore[union-attr]
        self.carry(self.core.outcomes(outs))

    def _open(self, body: Any, what: str) -> Any:  # a body our bound channel opened
        assert self.node is not None and self._noise is not None
        try:
            return unpack(body)  # a chunk here is refused as malformed
        except WireError as exc:
            self.node.metrics.inc(f"wire_dropped_{exc.reason}")
            self._noise.warning(f"exec-{what}-{exc.reason}", "dropping %s channel: %s", what, exc)
            raise

    # ----------------------------------------------------------------- peers
    async def _peer_sender(self, dest: str, box: Outbox) -> None:
        assert self.node is not None
        node = self.node
        delay = 0.05
        while not self._stopped and dest in self._addrs:
            try:
                ch = await node.runtime.connect(self._addrs[dest], PEER_PATH,
                                               node.config.exec_connect_timeout)
            except Unreachable as exc:
                node.metrics.inc("exec_peer_connect_failed")
                self._noise.warning(f"exec-connect-{dest}", "cannot reach %s: %s", dest, exc)
                await node.runtime.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            box.broken = False
            watch = self._spawn(box.watch(ch))
            try:
                await ch.send(FR.pack({"from": node.name}))
                while True:
                    await box.wake.wait()
                    if box.broken:
                        raise ChannelClosed("the peer closed the channel")
                    await drain(box, ch, FR.encode_frames, self._limit, node.config.frame_target,
                                partial(node.metrics.inc, "exec_peer_bytes_sent"))
            except ChannelClosed:
                node.metrics.inc("exec_peer_channel_lost")
            finally:
                watch.cancel()
                await ch.close()
        if self._links.get(dest) is box:
            del self._links[dest]

    async def _serve_peer(self, channel: Channel) -> None:
        assert self.node is not None and self.core is not None
        hello = self._open(await channel.recv(), "peer")
        if not isinstance(src := hello.get("from") if isinstance(hello, dict) else None, str):
            self.node.metrics.inc("exec_protocol_violation")
            return
        data = self.data
        assert data is not None
        while True:
            frame = await channel.recv()
            if is_chunk_frame(frame):
                await data.peers.on_chunk(src, frame)  # one that fails ends the channel
                continue
            msgs = self._open(frame, "peer")
            try:
                if not isinstance(msgs, list):
                    raise ProtocolViolation("a peer frame must be a list of messages")
                if msgs and msgs[0] == CONTROL_FRAME:
                    await data.peer_control(src, msgs)
                    continue
                step = self.node.config.message_slice
                for i in range(0, len(msgs), step):
                    if i:
                        await self.node.runtime.sleep(0)
                    self.carry(self.core.peer_messages(src, msgs[i:i + step]))
            except ProtocolViolation as exc:
                self.node.metrics.inc("exec_protocol_violation")
                self._noise.warning("exec-peer-violation", "closing channel from %s: %s", src, exc)
                return

    # --------------------------------------------------------------- clients
    async def _serve_client(self, channel: Channel) -> None:
        assert self.node is not None and self.core is not None
        node, core = self.node, self.core
        hello = self._open(await channel.recv(), "client")
        if not isinstance(hello, dict) or "client" not in hello:
            node.metrics.inc("exec_protocol_violation")
            return
        uploads = self.data.uploads  # type: ignore[union-attr]
        await channel.send(FR.pack({"node": node.name, "window": self.window,
                                    "members": self.member_addresses(),
                                    "max_value": uploads.max_value}))
        self._next_sid += 1
        sid = self._next_sid
        core.open_session(sid)
        box = self._sessions[sid] = Outbox()
        box.task = self._spawn(self._client_sender(channel, box))
        node.metrics.inc("exec_client_sessions")
        try:
            while True:
                msgs = await uploads.frame(sid, box, await channel.recv(), self._open)
                if msgs is None:
                    continue  # a transfer's: an offer, a credit, a chunk of an upload
                step = node.config.message_slice
                for i in range(0, len(msgs), step):
                    if i:
                        await node.runtime.sleep(0)
                    self.carry(core.client_messages(sid, msgs[i:i + step]))
        except ProtocolViolation as exc:
            node.metrics.inc("exec_protocol_violation")
            self._noise.warning("exec-client-violation", "closing client channel: %s", exc)
        finally:
            del self._sessions[sid]
            uploads.closed(sid)
            box.task.cancel()
            self.carry(core.close_session(sid))

    async def _client_sender(self, channel: Channel, box: Outbox) -> None:
        node = self.node
        assert node is not None
        try:
            while True:
                await box.wake.wait()
                await drain(box, channel, FR.encode_frames, self._limit, node.config.frame_target,
                            partial(node.metrics.inc, "exec_client_bytes_sent"))
        except ChannelClosed:
            await channel.close()

    # ------------------------------------------------------------- handlers
    async def handle_channel(self, path: str, channel: Channel) -> None:
        if self.core is None or self._stopped:
            return  # not started yet, or stopping: the client tries again or elsewhere
        try:
            if path == CLIENT_PATH:
                await self._serve_client(channel)
            elif path == PEER_PATH:
                await self._serve_peer(channel)
            else:
                self.node.metrics.inc("exec_unknown_path")  # type: ignore[union-attr]
        except (ChannelClosed, WireError):
            pass  # the peer went away, or sent a frame we refused (counted in _open)

    async def handle_request(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.node is None or self.core is None:
            return 503, b""
        if path != STATS_PATH:
            return 404, b""
        core = self.core
        stats = {"node": self.node.name, "workers": self.executor.workers, **core.counts(),
                 **self.data.stats()}  # type: ignore[union-attr]
        request = self.node.http_codec.open(body)
        if isinstance(request, dict) and isinstance(request.get("key"), str):
            stats["key"] = core.describe(request["key"])
        elif isinstance(request, dict) and request.get("pending"):
            stats["pending"] = sorted(core.pending)[:100]
        return 200, self.node.http_codec.seal(stats)
