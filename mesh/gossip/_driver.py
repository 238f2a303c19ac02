"""The thin asyncio driver around :class:`Membership`.

It owns the datagram endpoint, one timer and the push-pull tasks, and feeds
bytes and time into the sans-IO core. Everything that touches the outside
world goes through the :class:`~mesh.runtime.Runtime` it is given, so the same
driver runs under the real runtime and under the simulator. Network errors are
translated here, at this one boundary, into counters and rate-limited logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mesh.config import Config
from mesh.errors import WireError
from mesh.gossip._events import MemberEvent, PushPull, Send
from mesh.gossip._membership import Membership
from mesh.metrics import Metrics, RateLimitedLog
from mesh.runtime import Address, DatagramEndpoint, Runtime, TimerHandle, Unreachable
from mesh.wire import AUTH_REASONS, Codec
from mesh.wire._keys_peers import PeerKeys, parse_key_ids
from mesh.wire._tables import pack_table

log = logging.getLogger("mesh.gossip")

PUSH_PULL_PATH = "/v1/gossip/pushpull"

class GossipDriver:
    """Runs one node's membership protocol.

    ``on_event`` is called for every :class:`MemberEvent`, in order, from the
    driver's own callbacks: never concurrently, and never re-entrantly. It
    must not block: a push-pull may bring thousands of events at once, so a
    listener takes note and does its work once per burst.
    """

    def __init__(
        self,
        runtime: Runtime,
        config: Config,
        membership: Membership,
        codec: Codec,
        http_codec: Codec,
        metrics: Metrics,
        seeds: Sequence[Address] = (),
        on_event: Callable[[MemberEvent], None] | None = None,
        bind: Address | None = None,
        keys: PeerKeys | None = None,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.membership = membership
        self.metrics = metrics
        self.seeds = [s for s in seeds if s != membership.addr]
        # where the endpoint binds; the member address is what others reach
        self._bind = membership.addr if bind is None else bind
        self.on_event = on_event
        self.on_bulk_join: Callable[[], None] | None = None
        """Called after a push-pull merge that added at least
        ``Config.heap_freeze_joins`` members (``mesh join``: ``gc.freeze``)."""
        self.joined = asyncio.Event()
        self._codec = codec
        self._http_codec = http_codec
        # which key seals to which member (learned from frames and key_ids metadata)
        self._keys = keys if keys is not None else PeerKeys(codec.ring, runtime)
        self._noise = RateLimitedLog(log, runtime.now)
        self._endpoint: DatagramEndpoint | None = None
        self._timer: TimerHandle | None = None
        self._timer_at = float("inf")
        # A dict, not a set: stop() cancels in start order, never in id order.
        self._tasks: dict[asyncio.Task[Any], None] = {}
        self._stopped = False

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Bind the datagram endpoint, start the timers and join the seeds."""
        self._endpoint = await self.runtime.open_datagram(self._bind, self._on_datagram)
        self._reschedule()
        if self.seeds:
            self._spawn(self._join())
        else:
            self.joined.set()

    async def leave(self, timeout: float = 2.0) -> None:
        """Leave gracefully: every live peer is told at once, and we keep
        gossiping for a few rounds (at most ``timeout`` seconds) so the news
        also reaches members we did not know of."""
        self._perform(self.membership.leave(self.runtime.now()))
        await self.runtime.sleep(min(timeout, 3 * self.config.gossip_interval))

    async def stop(self) -> None:
        """Stop everything at once, without telling anyone (a crash looks the
        same to peers). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._endpoint is not None:
            self._endpoint.close()

    # ------------------------------------------------------------------ input
    def _on_datagram(self, data: bytes, src: Address) -> None:
        if self._stopped:
            return
        try:
            body = self._codec.open(data)
            self._keys.heard((src[0], src[1]), bytes(data[4:8]))
            out = self.membership.receive(body, src, self.runtime.now())
        except WireError as exc:
            self._rejected("udp", exc, src)
            return
        self._perform(out)
        self._after_input()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        if self._stopped:
            return
        self._perform(self.membership.tick(self.runtime.now()))
        self._after_input()

    async def handle_push_pull(self, request: Any) -> tuple[int, bytes]:
        """Serve a peer's push-pull: answer with our table (as it was before
        theirs), and merge theirs.

        ``request`` is the body the node already opened (authenticated and
        decoded), so a large table is checked and parsed once, not twice. The
        reply is packed in slices (:func:`mesh.wire._tables.pack_table`)."""
        try:
            if type(request) is not dict or "state" not in request:
                raise WireError("malformed", "push-pull request needs a state")
            rows = self.membership.local_state()
            self.membership.merge_remote(request["state"], self.runtime.now())
        except WireError as exc:
            self._rejected("http", exc, None)
            return (401 if exc.reason in AUTH_REASONS else 400), b""
        self._after_input()
        return 200, await self.seal_table({}, "state", rows)

    async def seal_table(self, head: dict[str, Any], key: str, rows: list[Any],
                         each: Callable[[Any], Any] | None = None) -> bytes:
        """``{**head, key: rows}`` sealed for HTTP, packed in slices."""
        body = await pack_table(head, key, rows, self.config.table_pack_slice, self._turn, each)
        return self._http_codec.seal_body(body)

    async def _turn(self) -> None:
        await self.runtime.sleep(0)

    # ----------------------------------------------------------------- output
    def _perform(self, effects: list[Send | PushPull]) -> None:
        endpoint = self._endpoint
        for effect in effects:
            if isinstance(effect, Send):
                if endpoint is None:
                    continue
                try:
                    frame = self._codec.seal_body(effect.body)
                except WireError:
                    self.metrics.inc("gossip_send_oversized")
                    continue
                self.metrics.inc("gossip_datagrams_sent")
                endpoint.sendto(self._keys.seal_for(effect.addr, frame), effect.addr)
            else:
                self._spawn(self._push_pull(effect.addr, effect.join))

    def _after_input(self) -> None:
        for report in self.membership.merges.drain():  # one line per push-pull merge
            if report.error is not None:
                self._rejected("http", report.error, report.src)
                continue
            if report.news and log.isEnabledFor(logging.INFO):
                log.info("%s", report.describe())
            bulk = self.on_bulk_join
            if bulk is not None and report.changes.get("join", 0) >= self.config.heap_freeze_joins:
                bulk()
        events = self.membership.drain_events()
        for event in events:  # what each member says it holds (authenticated gossip)
            held = parse_key_ids(event.member.meta.get("key_ids"))
            if held is not None and event.member.name != self.membership.name:
                self._keys.holds(event.member.addr, held)
        if self.on_event is not None:
            for event in events:  # listeners only take note (the exec layer coalesces)
                self.on_event(event)
        self._reschedule()

    def _reschedule(self) -> None:
        if self._stopped:
            return
        when = self.membership.next_deadline()
        if when >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.runtime.call_later(max(0.0, when - self.runtime.now()), self._on_timer)

    # ------------------------------------------------------------- push-pull
    async def _push_pull(self, addr: Address, join: bool) -> bool:
        body = await self.seal_table({"join": join}, "state", self.membership.local_state())
        try:
            raw = await self.runtime.request(
                addr, PUSH_PULL_PATH, body, timeout=max(1.0, 4 * self.config.probe_timeout)
            )
        except Unreachable as exc:
            self.metrics.inc("gossip_push_pull_failed")
            if not join:
                self._noise.warning("pushpull", "push-pull with %s:%s failed: %s", *addr, exc)
            return False
        try:
            reply = self._http_codec.open(raw)
            if type(reply) is not dict or "state" not in reply:
                raise WireError("malformed", "push-pull reply needs a state")
            self.membership.merge_remote(reply["state"], self.runtime.now(), bootstrap=join,
                                         src=addr)
        except WireError as exc:
            self._rejected("http", exc, addr)
            return False
        if not self._stopped:
            self._after_input()
        return True

    async def _join(self) -> None:
        delay = self.config.join_retry_initial
        while True:
            for seed in self.seeds:
                if await self._push_pull(seed, join=True):
                    log.info("joined the mesh through %s:%s", *seed)
                    self.joined.set()
                    return
            seeds = ", ".join(f"{h}:{p}" for h, p in self.seeds)
            log.warning("seeds not reachable yet (%s); retrying in %.1fs", seeds, delay)
            await self.runtime.sleep(delay)
            delay = min(delay * 2, self.config.join_retry_max)

    # ---------------------------------------------------------------- helpers
    def _rejected(self, channel: str, exc: WireError, src: Address | None) -> None:
        self.metrics.inc(f"wire_dropped_{exc.reason}")
        where = f" from {src[0]}:{src[1]}" if src else ""
        self._noise.warning(
            f"{channel}:{exc.reason}", "dropped a %s message%s: %s", channel, where, exc
        )

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks[task] = None
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("gossip task failed", exc_info=task.exception())
