"""What one node knows about itself, and the whole mesh as one node sees it.

* :func:`local_figures` -- this node's own figures: workers, queued, running,
  tasks per second, stolen, values held and their bytes, recent tasks. Peers
  fetch them with a sealed ``POST /v1/ops/stats``.
* :class:`MeshView` -- members from gossip (status, incarnation, address,
  ring share) joined with every reachable peer's figures, fetched on demand
  when a page, a scrape or ``mesh status`` asks, at most one fetch round per
  :data:`FRESH` seconds however many pages are open, and at most
  :data:`MAX_PEERS` peers per round.

Nothing here runs on a timer: with no page open, a node spends nothing.
Datasets, shuffles and actors join the snapshot as sections of their own when
those layers exist (``sections`` in the snapshot).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mesh.errors import WireError
from mesh.runtime import Unreachable
from mesh.store._values import payload_size

if TYPE_CHECKING:
    from mesh.node import Node

__all__ = ["FRESH", "MAX_PEERS", "STATS_PATH", "MeshView", "exec_service", "local_figures"]

STATS_PATH = "/v1/ops/stats"

FRESH = 0.9
"""Seconds a gathered snapshot is served again: pages refresh every second,
so several open pages share one round of peer requests."""

MAX_PEERS = 64
"""Peers asked per round. Beyond that the dashboard shows members from
gossip alone: one node's page must not fan out to a thousand peers."""

PEER_TIMEOUT = 0.5
"""Seconds a peer gets to answer; a dead or hung one shows as unreachable."""

RECENT_PER_NODE = 20
"""Recent tasks each node sends per round: enough for a live stream, a few
hundred bytes."""

STATUSES = ("alive", "suspect", "dead", "left")


def exec_service(node: Node) -> Any:
    """The node's exec service, or ``None`` (a node without one)."""
    from mesh.exec import ExecService

    for service in node.services:
        if isinstance(service, ExecService):
            return service
    return None


def local_figures(node: Node, since: int = 0) -> dict[str, Any]:
    """This node's figures, with up to :data:`RECENT_PER_NODE` tasks that
    finished after sequence number ``since``."""
    now = node.runtime.now()
    figures: dict[str, Any] = {"node": node.name, "workers": 0, "queued": 0, "running": 0,
                               "completed": 0, "rate": 0.0, "stolen": 0, "given": 0,
                               "values": 0, "bytes": 0, "states": {}, "recent": [], "seq": 0}
    service = exec_service(node)
    core = None if service is None else service.core
    if core is not None:
        states = core.state_counts()
        log = service.tasklog
        figures.update(
            workers=service.executor.workers, queued=core.queue_depth(),
            running=states.get("running", 0), completed=core.completed,
            rate=round(log.rate(now), 2), values=len(core.results),
            bytes=sum(payload_size(st.payload) for st in core.results.values()),
            states=states, recent=log.since(since, RECENT_PER_NODE), seq=log.finished_total,
        )
    store = node.store.stats()  # the node's store of values (mesh.store)
    figures.update(memory_bytes=store.memory_bytes, disk_bytes=store.disk_bytes,
                   stored_values=store.values)
    figures["now"] = round(now, 3)  # the clock of the recent tasks' finished_at
    figures["stolen"] = node.metrics.get("exec_tasks_taken")
    figures["given"] = node.metrics.get("exec_tasks_given")
    return figures


class MeshView:
    """The whole mesh as seen from ``node``; one per node, shared by every
    open page, scrape and status request."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._cache: dict[str, Any] | None = None
        self._cached_at = float("-inf")
        self._round: asyncio.Future[dict[str, Any]] | None = None
        self._seen: dict[str, int] = {}
        """Per node, the newest task sequence number already fetched."""

    async def snapshot(self) -> dict[str, Any]:
        """The mesh now, at most :data:`FRESH` seconds old. Concurrent callers
        share one round of requests."""
        now = self.node.runtime.now()
        if self._cache is not None and now - self._cached_at < FRESH:
            return self._cache
        if self._round is None:
            self._round = asyncio.ensure_future(self._gather())
        current = self._round
        try:
            snap = await asyncio.shield(current)
        finally:
            if current.done() and self._round is current:
                self._round = None
        self._cache, self._cached_at = snap, self.node.runtime.now()
        return snap

    async def _gather(self) -> dict[str, Any]:
        node = self.node
        members = node.members()
        shares = node.ring_shares()
        counts = dict.fromkeys(STATUSES, 0)
        for m in members:
            counts[m["status"]] = counts.get(m["status"], 0) + 1
            m["share"] = shares.get(m["name"], 0.0)
        peers = [m for m in members if m["name"] != node.name
                 and m["status"] in ("alive", "suspect")][:MAX_PEERS]
        figures = [local_figures(node, self._seen.get(node.name, 0))]
        if peers:
            figures += await asyncio.gather(*(self._ask(m) for m in peers))
        nodes = {}
        for f in figures:
            self._seen[f["node"]] = f.get("seq", 0)
            nodes[f["node"]] = f
        live = {m["name"] for m in members if m["status"] in ("alive", "suspect")}
        for name in [n for n in self._seen if n not in live]:
            del self._seen[name]
        return {"self": node.name, "at": round(node.runtime.now(), 3), "members": members,
                "counts": counts, "nodes": nodes,
                "unasked": max(0, len(live) - 1 - MAX_PEERS), "sections": {}}

    async def _ask(self, member: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        host, _, port = member["address"].rpartition(":")
        addr = (host.strip("[]"), int(port))
        body = node.http_codec.seal({"since": self._seen.get(member["name"], 0)})
        try:
            raw = await node.runtime.request(addr, STATS_PATH, body, PEER_TIMEOUT)
            reply = node.http_codec.open(raw)
        except (Unreachable, WireError) as exc:
            node.metrics.inc("ops_peer_stats_failed")
            return {"node": member["name"], "error": str(exc)[:200]}
        if not isinstance(reply, dict) or reply.get("node") != member["name"]:
            node.metrics.inc("ops_peer_stats_failed")
            return {"node": member["name"], "error": "the peer sent figures we cannot read"}
        return reply
