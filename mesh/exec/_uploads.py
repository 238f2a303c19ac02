"""Client uploads on a node: the driver around :class:`mesh.store._upload.Uploads`
for the exec service's client sessions.

A client sends a value (``Client.scatter``, a large ``submit`` argument) on
its sealed channel as an offer ``["vo", Scatter, [[key, tid, sizes, digest,
chunk_size]]]`` in a control frame, then as chunk frames; the node answers
with credits and cancels, and :class:`~mesh.protocol.messages.Scattered` once
the value is kept. Every frame is opened (authenticated) before anything in
it is read. The offer is checked by the sans-IO :class:`Uploads` before a
receiver or a sink exists; an accepted value lands in the spill directory
(:class:`~mesh.store._fetch.Inbound`, one per session) and reaches the exec
core (:class:`~mesh.exec._scatter.Scatters`) only whole and matching its
digest. When the session ends, what arrived of its uploads is deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesh.errors import WireError
from mesh.exec._outbox import Outbox
from mesh.exec._scatter import Scatters
from mesh.protocol.messages import ProtocolViolation, Scatter, decode_upload
from mesh.store._channel import CANCEL, CONTROL_FRAME, CREDIT, OFFER, int_list, is_chunk_frame
from mesh.store._fetch import Inbound
from mesh.store._upload import Accept, Closed, Discard, Landed, Offered, Refuse, Uploads
from mesh.store._values import Value

if TYPE_CHECKING:
    from mesh.exec._dataplane import DataPlane
    from mesh.node import Node

__all__ = ["ClientUploads"]

log = logging.getLogger("mesh.exec")


class ClientUploads:
    """Every client session's uploads on one node. ``carry(effects)`` carries
    out what the core returns."""

    def __init__(self, node: Node, data: DataPlane, scatters: Scatters,
                 carry: Callable[[list], None]) -> None:
        cfg = node.config
        self.node = node
        self.data = data
        self.scatters = scatters
        self.carry = carry
        store = data.store.store
        capacity = store.memory_limit + store.disk_limit
        self.core = Uploads(node.name, max_value=capacity, max_values=cfg.upload_max_values,
                            max_bytes=capacity)
        self._inbound: dict[int, Inbound] = {}
        self._errors: dict[tuple[int, str], str] = {}

    @property
    def max_value(self) -> int:
        return self.core.max_value

    def _session(self, sid: int, box: Outbox) -> Inbound:
        inbound = self._inbound.get(sid)
        if inbound is None:
            node, cfg = self.node, self.node.config
            inbound = self._inbound[sid] = Inbound(
                node.runtime, decode=decode_upload,
                send=lambda _src, raw: box.push_control(raw),
                deliver=lambda _src, msg: self._deliver(sid, msg),
                make_sink=self.data.store.sink_factory, have=self.data.values.get,
                landed=lambda key, value: self._landed(sid, key, value),
                window=cfg.transfer_window, stall_after=cfg.transfer_stall,
                metrics=node.metrics, max_value=self.core.max_value)
        return inbound

    # ------------------------------------------------------------ frames
    async def control(self, sid: int, box: Outbox, msgs: list) -> None:
        """A control frame from session ``sid``: offers of values it sends,
        credits and cancels for values it receives."""
        for raw in msgs[1:]:
            if type(raw) is not list or not raw:
                raise ProtocolViolation("a transfer control message must be a list")
            if raw[0] == OFFER:
                await self._offer(sid, box, raw)
            elif raw[0] in (CREDIT, CANCEL):
                if box.out.control(raw):
                    box.wake.set()
            else:
                raise ProtocolViolation(f"unknown transfer control message {raw[0]!r:.20}")

    async def frame(self, sid: int, box: Outbox, frame: Any,
                    open_: Callable[[Any, str], Any]) -> list | None:
        """A frame from session ``sid``: the core's messages, or None when it
        was a transfer's (a chunk, or a control frame), taken here.
        ``open_`` opens (authenticates) a sealed frame."""
        if await self.chunk(sid, frame):
            return None
        msgs = open_(frame, "client")
        if not isinstance(msgs, list):
            raise ProtocolViolation("a client frame must be a list of messages")
        if msgs and msgs[0] == CONTROL_FRAME:
            await self.control(sid, box, msgs)
            return None
        return msgs

    async def chunk(self, sid: int, frame: Any) -> bool:
        """Take ``frame`` if it is a chunk frame from session ``sid`` (True
        then): opened, so authenticated, before a byte of it is written."""
        if not is_chunk_frame(frame):
            return False
        inbound = self._inbound.get(sid)
        if inbound is None:
            self.node.metrics.inc("upload_chunks_stale")
            return True
        try:
            await inbound.on_chunk(str(sid), frame)
        except WireError as exc:  # forged or altered: the channel closes
            self.node.metrics.inc(f"wire_dropped_{exc.reason}")
            raise
        return True

    async def _offer(self, sid: int, box: Outbox, raw: list) -> None:
        if (len(raw) != 3 or type(raw[1]) is not list or type(raw[2]) is not list
                or len(raw[2]) != 1):
            raise ProtocolViolation("an upload must be [vo, Scatter, [one value]]")
        msg = decode_upload(raw[1])
        e = raw[2][0]
        if not (type(e) is list and len(e) == 5 and e[0] == msg.key and type(e[1]) is int
                and int_list(e[2]) and e[2]):
            raise ProtocolViolation("an uploaded value must be [key, tid, sizes, digest, "
                                    "chunk size] of its message's key")
        for eff in self.core.handle(Offered(sid, msg.key, sum(e[2]))):
            if type(eff) is Refuse:
                self.node.metrics.inc("upload_refused")
                log.warning("refusing an upload: %s", eff.reason)
                box.push_control([CANCEL, e[1]])
                self.carry(self.scatters.refuse(sid, eff.key, eff.reason))
            elif type(eff) is Accept:
                self.node.metrics.inc("upload_offers")
                await self._session(sid, box).on_offer(str(sid), raw)

    # ------------------------------------------------------------ values
    def _landed(self, sid: int, key: str, value: Value) -> Value:
        """A value arrived whole: keep it in the store (or use the one held)."""
        data = self.data
        held = data.values.get(key)
        if held is not None:
            if value.source is not None and value.source != held.source:
                self._delete(value.source)  # the same bytes came twice
            return held
        error = data.store.adopt(key, value)
        if error is not None:
            self._errors[sid, key] = str(error)
            return value
        data.values[key] = value
        return value

    def _deliver(self, sid: int, msg: Scatter) -> None:
        self.core.handle(Landed(sid, msg.key))
        error = self._errors.pop((sid, msg.key), None)
        if error is not None:
            self.carry(self.scatters.refuse(sid, msg.key, error))
            return
        value = msg.payload
        assert type(value) is Value
        self.node.metrics.inc("upload_values_received")
        self.carry(self.scatters.put(sid, msg.key, value, msg.replicas))

    def _delete(self, name: str) -> None:
        spill = self.data.store.spill
        self.data.spawn(self.node.runtime.run_blocking(spill.delete, name))

    # ------------------------------------------------------------ sessions
    def closed(self, sid: int) -> None:
        """Session ``sid`` ended: what arrived of its uploads is deleted."""
        inbound = self._inbound.pop(sid, None)
        for eff in self.core.handle(Closed(sid)):
            if type(eff) is Discard:
                self.node.metrics.inc("upload_discarded", len(eff.keys))
        if inbound is not None:
            inbound.close()  # each partial sink's file is unlinked
        for k in [k for k in self._errors if k[0] == sid]:
            del self._errors[k]

    async def tick(self) -> None:
        for inbound in list(self._inbound.values()):
            await inbound.tick()

    def stats(self) -> dict[str, int]:
        return self.core.stats()
