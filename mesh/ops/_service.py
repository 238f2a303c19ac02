"""The ops service: the dashboard, its event stream, ``/metrics`` and the
per-node figures peers ask each other for.

Plain GETs (read-only, guarded by :class:`~mesh.ops._token.ReadAccess`):

* ``/`` -- the dashboard page; ``/static/<file>`` -- its JS and CSS, shipped
  in the package (no CDN, no build step); open to all, they hold no data.
* ``/events`` -- server-sent events: one ``snapshot`` event per
  :data:`PUSH_INTERVAL` while the page stays open. Snapshots are built only
  while some page (or scrape, or ``mesh status``) asks.
* ``/v1/ops/snapshot`` -- the same snapshot once, as JSON (``mesh status``).
* ``/metrics`` -- Prometheus text format.

Sealed POST (peers, authenticated by the node before it gets here):

* ``/v1/ops/stats`` -- this node's own figures (``{"since": seq}`` limits the
  recent tasks to newer ones).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

from mesh.errors import WireError
from mesh.ops._snapshot import STATS_PATH, MeshView, local_figures
from mesh.ops._token import ReadAccess

if TYPE_CHECKING:
    from mesh.gossip import MemberEvent
    from mesh.node import Node
    from mesh.runtime import Channel

__all__ = ["PREFIX", "PUSH_INTERVAL", "SNAPSHOT_PATH", "OpsService"]

log = logging.getLogger("mesh.ops")

PREFIX = "/v1/ops/"
SNAPSHOT_PATH = PREFIX + "snapshot"
PUSH_INTERVAL = 1.0
"""Seconds between two snapshots sent to an open page: live enough to watch
a job, and a few KB/s per page for a small mesh."""

MAX_STREAMS = 32
"""Open event streams per node; more get 503, so pages cannot pile up load."""

_STATIC = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
_NO_STORE = {"Cache-Control": "no-store"}

Reply = tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]"]


def _text(status: int, text: str) -> Reply:
    return status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode()


def static_file(name: str) -> bytes:
    """One of the dashboard's shipped files."""
    return resources.files("mesh.ops").joinpath("static", name).read_bytes()


class OpsService:
    """Serves the read-only views of one node. Plug it into a
    :class:`~mesh.node.Node` as a service."""

    prefix = PREFIX

    def __init__(self) -> None:
        self.node: Node | None = None
        self.view: MeshView | None = None
        self.access: ReadAccess | None = None
        self._registry: Any = None
        self._streams = 0
        self._stopped = False

    async def start(self, node: Node) -> None:
        self.node = node
        self.view = MeshView(node)
        self.access = ReadAccess(node.bind[0], node.secret)

    async def stop(self, graceful: bool) -> None:
        self._stopped = True

    def on_member_event(self, event: MemberEvent) -> None:
        """Pages read membership when they ask; nothing to do here."""

    async def handle_channel(self, path: str, channel: Channel) -> None:
        assert self.node is not None
        self.node.metrics.inc("ops_unknown_path")

    async def handle_request(self, path: str, body: bytes) -> tuple[int, bytes]:
        node = self.node
        if node is None:
            return 503, b""
        if path != STATS_PATH:
            return 404, b""
        try:
            request = node.http_codec.open(body)
        except WireError:
            return 400, b""
        since = request.get("since", 0) if isinstance(request, dict) else 0
        since = since if type(since) is int else 0
        node.metrics.inc("ops_stats_served")
        return 200, node.http_codec.seal(local_figures(node, since))

    # --------------------------------------------------------------- pages
    async def handle_get(
        self, path: str, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> Reply:
        """A plain GET: the dashboard, its assets, events or metrics."""
        node, access = self.node, self.access
        if node is None or access is None or self._stopped:
            return _text(503, "the node is starting or stopping\n")
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in _STATIC:
                return _text(404, "no such file\n")
            return 200, {"Content-Type": _STATIC[name]}, static_file(name)
        if path not in ("/", "/index.html", "/events", "/metrics", SNAPSHOT_PATH):
            node.metrics.inc("http_not_found")
            return _text(404, "not found: the dashboard is at /, metrics at /metrics\n")
        if not access.allows(headers, query):
            node.metrics.inc("ops_unauthorized")
            return 401, {"Content-Type": "text/plain; charset=utf-8",
                         "WWW-Authenticate": 'Bearer realm="mesh"'}, (
                b"a read token is needed on a non-loopback bind: run "
                b"`mesh token --address HOST:PORT` with the cluster secret\n")
        if path in ("/", "/index.html"):
            return 200, {"Content-Type": "text/html; charset=utf-8", **_NO_STORE}, \
                static_file("index.html")
        if path == "/metrics":
            from mesh.ops._prom import CONTENT_TYPE, registry_for, render

            if self._registry is None:
                self._registry = registry_for(node)
            return 200, {"Content-Type": CONTENT_TYPE}, render(self._registry)
        assert self.view is not None
        if path == SNAPSHOT_PATH:
            snap = await self.view.snapshot()
            return 200, {"Content-Type": "application/json", **_NO_STORE}, \
                json.dumps(snap).encode()
        if self._streams >= MAX_STREAMS:
            return _text(503, f"too many open dashboards on this node (max {MAX_STREAMS})\n")
        return 200, {"Content-Type": "text/event-stream", "X-Accel-Buffering": "no",
                     **_NO_STORE}, self._events()

    async def _events(self) -> AsyncIterator[bytes]:
        """Server-sent events while the page stays open; the HTTP layer
        closes this generator when the page goes away."""
        assert self.node is not None and self.view is not None
        self._streams += 1
        try:
            yield b"retry: 2000\n\n"
            while not self._stopped:
                snap = await self.view.snapshot()
                yield b"event: snapshot\ndata: " + json.dumps(snap).encode() + b"\n\n"
                await self.node.runtime.sleep(PUSH_INTERVAL)
        finally:
            self._streams -= 1
