"""The exec service's values: where task results of kind ``OK_VALUE`` live on
a node and how they cross its channels.

* **The store.** Every :class:`~mesh.store.Value` the exec core holds (a
  result it keeps as a replica, an input of a local task, a value being
  handed on) is kept in the node's :class:`~mesh.store._driver.NodeStore`
  under its key. :meth:`DataPlane.keep` runs on every exec tick and releases
  the values the core no longer needs (the release protocol dropped the
  result, no local task waits for it, no transfer is in flight).
* **Results.** An executor outcome ``(tid, OK_VALUE, Value)`` whose value
  sits in a file of the spill directory (a worker wrote it) is adopted as it
  is. A result pickled whole (``OK_PICKLE``) of at least
  ``Config.oob_threshold`` bytes becomes a Value too (one write to the spill
  directory, off the loop), so it moves as a chunked transfer and never as
  one frame. A value the store cannot hold fails its task with
  :class:`~mesh.errors.OutOfStorage`'s message.
* **Channels.** Messages that carry Values go out as offers
  (:mod:`mesh.store._channel`); control messages (offers, credits,
  cancels) travel in frames of their own, marked by a leading ``"V"``, so the
  core's frames are never searched for them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mesh.exec._executor import Outcome
from mesh.exec._scatter import Scatters
from mesh.protocol import payload as P
from mesh.protocol.messages import ProtocolViolation, decode_peer, encode
from mesh.store import Value, pickled_stream, wrap_pickled
from mesh.store._channel import (
    CANCEL,
    CONTROL_FRAME,
    CREDIT,
    IDENT_BYTES,
    OFFER,
    Offers,
    carries_value,
)
from mesh.store._fetch import Inbound

if TYPE_CHECKING:
    from mesh.exec._core import ExecCore
    from mesh.exec._outbox import Outbox
    from mesh.node import Node

__all__ = ["CONTROL_FRAME", "DataPlane"]

log = logging.getLogger("mesh.exec")

class DataPlane:
    """Values for one exec service and its ``core``. ``links(name)`` is the
    outbox to a peer (opened on demand); ``carry(effects)`` carries out what
    the core returns."""

    def __init__(self, node: Node, core: ExecCore, *, links: Any, carry: Any,
                 takes_values: bool) -> None:
        cfg = node.config
        self.node = node
        self.core = core
        self.store = node.store
        self.links = links
        self.carry = carry
        self.stopped = False
        self.takes_values = takes_values
        """The executor maps Value inputs itself (a ``spill_dir`` was given)."""
        self.threshold = cfg.oob_threshold
        self.values: dict[str, Value] = {}
        """Values held here by key (maps of spill files on a real node)."""
        self.offers = Offers(node.runtime, chunk=cfg.transfer_chunk, window=cfg.transfer_window)
        self.peers = Inbound(
            node.runtime, decode=decode_peer, send=self._to_peer,
            deliver=self._deliver, make_sink=self.store.sink_factory, have=self.values.get,
            landed=self.landed, window=cfg.transfer_window, stall_after=cfg.transfer_stall,
            metrics=node.metrics,
            max_value=self.store.store.memory_limit + self.store.store.disk_limit)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.store.on_spilled = self.spilled
        from mesh.exec._uploads import ClientUploads  # it imports this module's type

        self.scatters = Scatters(core)
        self.uploads = ClientUploads(node, self, self.scatters, carry)
        """Values clients send (``Client.scatter``): :mod:`mesh.exec._uploads`."""

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("data plane task failed", exc_info=task.exception())

    def _deliver(self, src: str, msg: Any) -> None:
        """A message whose values all arrived: to the core."""
        if not self.stopped:
            self.carry(self.core.peer_records(src, [msg]))

    def needed(self, key: str) -> bool:
        """Does the core still use ``key``'s value (a result held here, an
        input of a local task, a key this node or a client of it waits for)?"""
        t = self.core.table
        return (key in t.results or t.interest.get(key, 0) > 0 or key in t.pending
                or key in t.watch or key in t.fetch)

    async def tick(self) -> None:
        """Every exec tick: scattered values confirmed by a view change,
        stalled transfers from peers and clients."""
        self.carry(self.scatters.poll())
        await self.peers.tick()
        await self.uploads.tick()

    async def stop(self) -> None:
        self.stopped = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.peers.close()

    # ------------------------------------------------------------ values
    def landed(self, key: str, value: Value) -> Value:
        """A value arrived or was made here: keep it in the store."""
        if key in self.values:
            return self.values[key]
        error = self.store.adopt(key, value)
        if error is not None:
            log.warning("%s", error)
        self.values[key] = value
        return value

    def keep(self) -> None:
        """Release the values the core no longer needs."""
        needed = self.needed
        peers = self.peers
        peers.drop_idle(needed)
        for key in [k for k in self.values if not needed(k) and not peers.wanted(k)]:
            del self.values[key]
        self.store.keep(lambda k: k in self.values)

    def stats(self) -> dict[str, Any]:
        figures = {f"store_{k}": v for k, v in self.store.stats().as_dict().items()}
        figures["transfers_in"] = len(self.peers.fetches)
        figures.update(self.uploads.stats())
        figures["fetching"] = {k: f.src for k, f in list(self.peers.fetches.items())[:20]}
        return figures

    # ---------------------------------------------------------- outcomes
    def needs_values(self, outs: list[Outcome]) -> bool:
        threshold = self.threshold
        return any(kind == P.OK_VALUE or (kind == P.OK_PICKLE and len(payload) >= threshold)
                   for _, kind, payload in outs)

    def outcomes(self, outs: list[Outcome]) -> list[Outcome]:
        """``outs`` with large results kept as Values in the store."""
        done = []
        for tid, kind, payload in outs:
            if kind == P.OK_PICKLE and len(payload) >= self.threshold:
                header, buffers = wrap_pickled(payload)  # in memory until it spills
                payload, kind = Value.of(header, buffers), P.OK_VALUE
            if kind == P.OK_VALUE:
                assert type(payload) is Value
                if not payload.ident:  # named once: every offer of it says the same
                    payload = replace(payload, ident=self.node.runtime.token_bytes(IDENT_BYTES))
                self.values.pop(tid, None)  # a run's own value replaces a stale one
                error = self.store.adopt(tid, payload)
                if error is not None:
                    done.append((tid, P.FAILED, str(error).encode()))
                    continue
                self.values[tid] = payload
            done.append((tid, kind, payload))
        return done

    def job_inputs(self, jobs: list[list]) -> list[list]:
        """Jobs whose Value inputs the executor can read: as they are when it
        maps files itself, else the pickle stream a Value wraps (a copy)."""
        if self.takes_values:
            return jobs
        for job in jobs:
            deps = job[4]
            if deps and any(type(v[1]) is Value for v in deps.values()):
                job[4] = {k: self._inline(v) for k, v in deps.items()}
        return jobs

    @staticmethod
    def _inline(dep: list) -> list:
        value = dep[1]
        if type(value) is not Value:
            return dep
        stream = pickled_stream(value.header, value.buffers)
        if stream is None:
            return [P.FAILED, b"this node's executor cannot read a value made by a worker that "
                              b"writes files: give it the node's spill directory"]
        whole = stream.obj  # the worker's own bytes while the value is in memory: no copy
        return [P.OK_PICKLE, whole if type(whole) is bytes and len(whole) == stream.nbytes
                else bytes(stream)]

    def spilled(self, key: str, value: Value, mapped: Value) -> None:
        """``key``'s value was written to the spill directory: hold the map of
        the file instead of the memory (the results table and our index)."""
        if self.values.get(key) is value:
            self.values[key] = mapped
        st = self.core.table.results.get(key)
        if st is not None and st.payload is value:
            st.payload = mapped

    # ---------------------------------------------------------- channels
    def encode(self, box: Outbox, msgs: list) -> list:
        """The wire form of ``msgs`` for ``box``; those carrying Values are
        offered instead (a control message; its senders join the box)."""
        out: list = []
        for m in msgs:
            if carries_value(m):
                if out:  # the messages before the offer go before it
                    box.push(out)
                    out = []
                box.push_control(self.offers.offer(m, box.out))
            else:
                out.append(encode(m))
        return out

    def _to_peer(self, dest: str, raw: list) -> None:
        box = self.links(dest)
        if box is not None:
            box.push_control(raw)

    async def peer_control(self, src: str, msgs: list) -> None:
        """A control frame from peer ``src``."""
        for raw in msgs[1:]:
            if type(raw) is not list or not raw:
                raise ProtocolViolation("a transfer control message must be a list")
            if raw[0] == OFFER:
                await self.peers.on_offer(src, raw)
            elif raw[0] in (CREDIT, CANCEL):
                box = self.links(src, False)
                if box is not None and box.out.control(raw):
                    box.wake.set()
            else:
                raise ProtocolViolation(f"unknown transfer control message {raw[0]!r:.20}")
