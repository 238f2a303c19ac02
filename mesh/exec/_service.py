"""The exec service: the asyncio driver around :class:`~mesh.exec._core.ExecCore`.

It serves ``/v1/exec/`` of a :class:`mesh.node.Node` (channels and first frames:
:mod:`mesh.protocol.framing`) and ``/v1/exec/stats`` (``{"node", "completed",
"queued", "tasks", "results", "workers", "sessions", "waiting_for", "waiters",
"orphan_wants", "states"}``; ``{"key": k}`` adds where task ``k`` stands here,
``{"pending": true}`` the first keys it waits for).

Every frame is opened with the node's HTTP codec before anything reads it; a
frame that fails to open or breaks the protocol closes its channel (counted,
logged). Effects go to per-destination buffers, sent as one frame per buffer
whenever the channel is free. Member events are coalesced: one view rebuild
per burst, on the next loop turn.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mesh.addresses import format_address
from mesh.errors import ConfigError, WireError
from mesh.exec._core import ExecCore
from mesh.exec._effects import Effect, ToPeer
from mesh.exec._executor import Executor, Outcome
from mesh.exec._outbox import Outbox
from mesh.metrics import RateLimitedLog
from mesh.ops._tasklog import TaskLog
from mesh.placement import member_weight
from mesh.protocol import payload as P
from mesh.protocol.framing import CLIENT_PATH, PEER_PATH, PREFIX, STATS_PATH, encode_frames
from mesh.protocol.messages import Members, ProtocolViolation, encode
from mesh.runtime import Channel, ChannelClosed, Unreachable

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
        self._rebalancer: asyncio.Task[None] | None = None
        self._members: list[tuple[str, int]] = []
        self._steal_timer: Any = None
        self._published_queue = -1
        self._steal_wait_until = 0.0
        self._stopped = False
        self._noise: RateLimitedLog | None = None
        self._limit = 0
        self.tasklog = TaskLog()  # recent finished runs and the run rate, for mesh.ops

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
                             recheck=cfg.subscription_recheck)
        node.set_meta({"workers": self.executor.workers})
        await self.executor.start(self._on_outcomes)
        self._update_view()
        self._timer = node.runtime.call_later(cfg.exec_tick, self._tick)
        self._steal_timer = node.runtime.call_later(cfg.steal_interval, self._steal_tick)

    async def stop(self, graceful: bool) -> None:
        self._stopped = True
        for timer in (self._timer, self._steal_timer, self._view_timer):
            if timer is not None:
                timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for box in [*self._links.values(), *self._sessions.values()]:
            if box.task is not None:
                box.task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.executor.stop()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _tick(self) -> None:
        if self._stopped or self.node is None or self.core is None:
            return
        self._carry(self.core.tick(self.node.runtime.now()))
        self._timer = self.node.runtime.call_later(self.node.config.exec_tick, self._tick)

    def _steal_tick(self) -> None:
        """Publish our queue depth (a power of two: quiet gossip); idle, ask for work."""
        if self._stopped or self.node is None or self.core is None:
            return
        node, core = self.node, self.core
        cfg = node.config
        depth = core.queue_depth()
        bucket = 0 if depth == 0 else 1 << (depth.bit_length() - 1)
        if bucket != self._published_queue:
            self._published_queue = bucket
            try:
                node.set_meta({"queue": bucket})
            except ConfigError as exc:  # metadata full: stealing from us stays off
                self._noise.warning("exec-meta", "cannot publish queue depth: %s", exc)
        now = node.runtime.now()
        free = self.executor.capacity()
        if depth == 0 and free > 0 and now >= self._steal_wait_until:
            best: tuple[int, str] | None = None
            for m in node.membership.alive():  # sorted by name: ties are deterministic
                queue = m.meta.get("queue", 0) if isinstance(m.meta, dict) else 0
                if (m.name != node.name and isinstance(queue, int)
                        and queue >= cfg.steal_min_queue and (best is None or queue > best[0])):
                    best = (queue, m.name)
            if best is not None:
                self._carry(core.steal_from(best[1], max(1, min(best[0] // 2, free))))
                self._steal_wait_until = now + 4 * cfg.steal_interval
        self._steal_timer = node.runtime.call_later(cfg.steal_interval, self._steal_tick)

    # ------------------------------------------------------------------ view
    def on_member_event(self, event: MemberEvent) -> None:
        """Coalesced: a burst of events (a push-pull full of news) costs one
        view rebuild, on the next loop turn."""
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
        effects = self.core.set_view(members, self.node.runtime.now())
        if self._rebalancer is None or self._rebalancer.done():
            self._rebalancer = self._spawn(self._rebalance())
        members_msg = encode(Members(self.member_addresses()))
        for box in self._sessions.values():
            box.push([members_msg])
        self._carry(effects)

    async def _rebalance(self) -> None:
        """Run the core's rebalancing pass in slices, yielding to the loop."""
        assert self.node is not None and self.core is not None
        while self.core.rebalancing():
            self._carry(self.core.rebalance_step(self.node.config.rebalance_slice))
            await self.node.runtime.sleep(0)
        self._carry([])

    def member_addresses(self) -> list[str]:
        return [format_address(a) for _, a in sorted(self._addrs.items())]

    # ------------------------------------------------------------- plumbing
    def _carry(self, effects: list[Effect]) -> None:
        """Carry the core's effects out to their channels and feed the executor."""
        core = self.core
        assert core is not None
        for eff in effects:
            if type(eff) is ToPeer:
                box = self._links.get(eff.dest)
                if box is None:
                    if eff.dest not in self._addrs:
                        self.node.metrics.inc("exec_msgs_to_departed")  # type: ignore[union-attr]
                        continue
                    box = self._links[eff.dest] = Outbox()
                    box.task = self._spawn(self._peer_sender(eff.dest, box))
            else:
                box = self._sessions.get(eff.sid)
                if box is None:
                    continue
            box.push([encode(m) for m in eff.msgs])
        if core.has_ready():
            cap = self.executor.capacity(core.next_function())
            if cap > 0:
                jobs, solo = core.take_jobs(cap)
                self.tasklog.started([j[0] for j in (*jobs, *solo)], self.node.runtime.now())
                if jobs:
                    self.executor.run(jobs)
                for job in solo:
                    self.executor.run_solo(job)

    def _on_outcomes(self, outs: list[Outcome]) -> None:
        if self.core is None or self._stopped:
            return
        limit = self._limit // 2
        for i, (tid, _kind, payload) in enumerate(outs):
            if len(payload) > limit:
                outs[i] = (tid, P.FAILED, (
                    f"the result of task {tid!r} is {len(payload)} bytes, more than half of "
                    f"max_http_body ({self._limit}); return something smaller, or store "
                    "large data elsewhere and return a reference to it").encode())
        self.tasklog.finished(outs, self.node.runtime.now())  # type: ignore[union-attr]
        self._carry(self.core.outcomes(outs))

    def _open(self, frame: bytes, what: str) -> Any:
        assert self.node is not None and self._noise is not None
        try:
            return self.node.http_codec.open(frame)
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
            watch = self._spawn(self._watch_link(ch, box))
            try:
                await ch.send(node.http_codec.seal({"from": node.name}))
                while True:
                    await box.wake.wait()
                    if box.broken:
                        raise ChannelClosed("the peer closed the channel")
                    for frame in encode_frames(node.http_codec, box.take(), self._limit,
                                               node.config.frame_target):
                        await ch.send(frame)
                        node.metrics.inc("exec_peer_bytes_sent", len(frame))  # mesh.ops: transfers
            except ChannelClosed:
                node.metrics.inc("exec_peer_channel_lost")
            finally:
                watch.cancel()
                await ch.close()
        if self._links.get(dest) is box:
            del self._links[dest]

    async def _watch_link(self, ch: Channel, box: Outbox) -> None:
        """A read on our outgoing channel returns only when it ends: then reconnect."""
        try:
            while True:
                await ch.recv()
        except ChannelClosed:
            box.broken = True
            box.wake.set()

    async def _serve_peer(self, channel: Channel) -> None:
        assert self.node is not None and self.core is not None
        hello = self._open(await channel.recv(), "peer")
        if not isinstance(src := hello.get("from") if isinstance(hello, dict) else None, str):
            self.node.metrics.inc("exec_protocol_violation")
            return
        while True:
            msgs = self._open(await channel.recv(), "peer")
            try:
                if not isinstance(msgs, list):
                    raise ProtocolViolation("a peer frame must be a list of messages")
                step = self.node.config.message_slice
                for i in range(0, len(msgs), step):
                    if i:
                        await self.node.runtime.sleep(0)
                    self._carry(self.core.peer_messages(src, msgs[i:i + step]))
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
        await channel.send(node.http_codec.seal({
            "node": node.name, "window": self.window, "members": self.member_addresses()}))
        self._next_sid += 1
        sid = self._next_sid
        core.open_session(sid)
        box = self._sessions[sid] = Outbox()
        box.task = self._spawn(self._client_sender(channel, box))
        node.metrics.inc("exec_client_sessions")
        try:
            while True:
                msgs = self._open(await channel.recv(), "client")
                if not isinstance(msgs, list):
                    raise ProtocolViolation("a client frame must be a list of messages")
                step = node.config.message_slice
                for i in range(0, len(msgs), step):
                    if i:
                        await node.runtime.sleep(0)
                    self._carry(core.client_messages(sid, msgs[i:i + step]))
        except ProtocolViolation as exc:
            node.metrics.inc("exec_protocol_violation")
            self._noise.warning("exec-client-violation", "closing client channel: %s", exc)
        finally:
            del self._sessions[sid]
            box.task.cancel()
            self._carry(core.close_session(sid))

    async def _client_sender(self, channel: Channel, box: Outbox) -> None:
        assert self.node is not None
        codec = self.node.http_codec
        try:
            while True:
                await box.wake.wait()
                for frame in encode_frames(codec, box.take(), self._limit,
                                           self.node.config.frame_target):
                    await channel.send(frame)
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
        stats = {"node": self.node.name, "completed": core.completed,
                 "queued": core.queue_depth(), "tasks": len(core.tasks),
                 "results": len(core.results), "workers": self.executor.workers,
                 "sessions": len(core.sessions), "waiting_for": len(core.pending),
                 "waiters": len(core.table.waiters), "orphan_wants": len(core.table.orphan_wants),
                 "states": core.state_counts()}
        request = self.node.http_codec.open(body)
        if isinstance(request, dict) and isinstance(request.get("key"), str):
            stats["key"] = core.describe(request["key"])
        elif isinstance(request, dict) and request.get("pending"):
            stats["pending"] = sorted(core.pending)[:100]
        return 200, self.node.http_codec.seal(stats)
