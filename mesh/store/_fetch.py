"""Receiving values: every value a node (or a client) is receiving, one
fetch per key (the sending side and the wire form are in
:mod:`mesh.store._channel`).

**One fetch per key per node** (:class:`Inbound`): while a value is being
received, a second offer of the same key (another replica, another message)
only joins: its message waits for the same value, its source is kept as an
alternate. When the source dies (a view change), stalls, or sends bytes that
do not match, the receiver takes up an alternate, keeping the chunks it has
when the alternate offers the same ident (another replica) and starting
again when it does not (a value computed again). A value this node already
holds is not fetched again: the offer is cancelled and the message delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mesh.errors import WireError
from mesh.metrics import Metrics
from mesh.protocol.messages import ProtocolViolation
from mesh.store._channel import CANCEL, CREDIT, fill, int_list, offered_keys_fit
from mesh.store._chunks import Sink
from mesh.store._transfer import (
    Cancel,
    Chunk,
    Complete,
    Corrupt,
    Credit,
    Offer,
    Receiver,
    Stalled,
)
from mesh.store._values import Value
from mesh.wire import SealedChunk

__all__ = ["Inbound", "values_inbound"]

log = logging.getLogger("mesh.store")


@dataclass(slots=True, eq=False)
class _Waiting:
    """A message held until every value it carries arrived."""

    src: str
    msg: Any
    need: set[str]
    values: dict[str, Value | bytes] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Fetch:
    vkey: str
    receiver: Receiver
    names: list[str | None]
    src: str
    tid: int
    offers: dict[int, str] = field(default_factory=dict)
    """Every offer this fetch was given: tid -> source."""
    alternates: list[tuple[str, Offer]] = field(default_factory=list)
    waiting: list[_Waiting] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    stalls: int = 0
    """Stalls since the last chunk arrived."""


class Inbound:
    """Every value this node (or client) is receiving, one fetch per key.

    ``send(src, raw)`` queues a control message to a source; ``deliver(src,
    msg)`` hands over a message whose values all arrived; ``have(vkey)`` is a
    value already held here (or None); ``landed(vkey, value, name)`` is told
    of each value received (``name``: its file in the spill directory).
    """

    def __init__(self, runtime: Any, *, decode: Callable[[Any], Any],
                 send: Callable[[str, list], None], deliver: Callable[[str, Any], None],
                 make_sink: Callable[[], tuple[Callable[[Sequence[int]], Sink],
                                               list[str | None]]],
                 have: Callable[[str], Value | None], landed: Callable[[str, Value], Value],
                 window: int, stall_after: float, metrics: Metrics,
                 max_value: int = 1 << 62) -> None:
        self.runtime = runtime
        self.decode = decode
        self.send = send
        self.deliver = deliver
        self.make_sink = make_sink
        self.have = have
        self.landed = landed
        self.window = window
        self.stall_after = stall_after
        self.metrics = metrics
        self.max_value = max_value
        """The largest value accepted: what the store (or the client's RAM) can hold."""
        self.fetches: dict[str, _Fetch] = {}
        self._by_tid: dict[tuple[str, int], _Fetch] = {}

    def wanted(self, vkey: str) -> bool:
        return vkey in self.fetches

    # ------------------------------------------------------------- offers
    async def on_offer(self, src: str, raw: list) -> None:
        if (len(raw) != 3 or type(raw[1]) is not list or type(raw[2]) is not list
                or not raw[2]):
            raise ProtocolViolation("an offer must be [vo, message, [values]]")
        msg = self.decode(raw[1])
        offers: list[tuple[str, Offer]] = []
        for e in raw[2]:
            if not (type(e) is list and len(e) == 5 and type(e[0]) is str
                    and type(e[1]) is int and int_list(e[2]) and e[2]
                    and type(e[3]) is bytes and type(e[4]) is int and e[4] > 0):
                raise ProtocolViolation("an offered value must be [key, tid, sizes, ident, "
                                        "chunk size]")
            if sum(e[2]) > self.max_value:
                raise ProtocolViolation(f"an offered value of {sum(e[2])} bytes, more than "
                                        f"this side can hold ({self.max_value})")
            offers.append((e[0], Offer(e[1], tuple(e[2]), e[3], e[4])))
        keys = {vkey for vkey, _ in offers}
        if not offered_keys_fit(msg, keys):
            raise ProtocolViolation("an offer's values do not match its message")
        waiting = _Waiting(src, msg, set(keys))
        for vkey, offer in offers:
            held = self.have(vkey)
            if held is not None:
                self.send(src, [CANCEL, offer.tid])
                waiting.values[vkey] = held
                waiting.need.discard(vkey)
                self.metrics.inc("transfer_offers_held")
                continue
            fetch = self.fetches.get(vkey)
            if fetch is None:
                make, names = self.make_sink()
                receiver = Receiver(window=self.window, stall_after=self.stall_after,
                                    make_sink=make)
                fetch = self.fetches[vkey] = _Fetch(vkey, receiver, names, src, offer.tid)
                fetch.waiting.append(waiting)
                await self._take(fetch, src, offer)
            elif not fetch.src:  # its source died with no alternate: this one
                fetch.waiting.append(waiting)
                self.metrics.inc("transfer_resumed")
                await self._take(fetch, src, offer)
            else:
                fetch.waiting.append(waiting)
                fetch.alternates.append((src, offer))
                self._by_tid[src, offer.tid] = fetch
                self.metrics.inc("transfer_offers_joined")
        if not waiting.need:
            self.deliver(src, fill(msg, waiting.values))

    async def _take(self, fetch: _Fetch, src: str, offer: Offer) -> None:
        """Receive ``fetch`` from ``src``'s ``offer`` from now on."""
        fetch.src, fetch.tid = src, offer.tid
        fetch.offers[offer.tid] = src
        self._by_tid[src, offer.tid] = fetch
        async with fetch.lock:
            effects = fetch.receiver.handle(offer, self.runtime.now())
        await self._effects(fetch, effects)

    def _switch(self, fetch: _Fetch) -> bool:
        """Take up an alternate source, if one is left: another node's offer
        first, else a new offer of the same node (it restarted, or sent the
        message again), whose sender is alive where the old one may not be."""
        alive = ([a for a in fetch.alternates if a[0] != fetch.src]
                 or [a for a in fetch.alternates if a[1].tid != fetch.tid])
        if not alive:
            return False
        src, offer = alive[0]
        fetch.alternates.remove((src, offer))
        self.metrics.inc("transfer_resumed")
        task = asyncio.ensure_future(self._take(fetch, src, offer))
        task.add_done_callback(_log_failure)
        return True

    # ------------------------------------------------------------- chunks
    async def on_chunk(self, src: str, frame: SealedChunk) -> None:
        """A chunk frame from ``src``, as its bound channel received it
        (opened off the loop, into its place in the sink when it is the
        chunk due next and lands in one piece). Raises
        :class:`~mesh.errors.WireError` for a frame that does not open: its
        channel must end."""
        tid = int.from_bytes(frame.stream, "big")
        fetch = self._by_tid.get((src, tid))
        live = fetch is not None and fetch.receiver.offer is not None

        def absorb(receiver: Receiver | None, now: float) -> list:
            into = (None if receiver is None
                    else receiver.place(tid, frame.index, frame.data_len))
            if into is not None:  # the chunk due next: decrypted where it belongs
                frame.open_into(into)
                return receiver.handle(Chunk(tid, frame.index, (into,), placed=True), now)
            data = frame.open()  # a stale chunk too: authenticated, then dropped
            if receiver is None:
                return []
            return receiver.handle(Chunk(tid, frame.index, (memoryview(data),)), now)
        try:
            if not live:
                await self.runtime.run_blocking(absorb, None, 0.0)
                self.metrics.inc("transfer_chunks_stale")
                return
            assert fetch is not None
            async with fetch.lock:
                effects = await self.runtime.run_blocking(absorb, fetch.receiver,
                                                          self.runtime.now())
        except WireError as exc:
            self.metrics.inc(f"wire_dropped_{exc.reason}")
            raise
        self.metrics.inc("transfer_bytes_received", len(frame))
        await self._effects(fetch, effects)

    async def _effects(self, fetch: _Fetch, effects: list) -> None:
        for eff in effects:
            if isinstance(eff, Credit):
                if not eff.rewind:
                    fetch.stalls = 0  # a chunk (or an offer) was taken
                self.send(fetch.offers.get(eff.tid, fetch.src),
                          [CREDIT, eff.tid, eff.next_seq, eff.limit, eff.rewind])
            elif isinstance(eff, Cancel):
                self.send(fetch.offers.get(eff.tid, fetch.src), [CANCEL, eff.tid])
            elif isinstance(eff, Complete):
                self._complete(fetch, eff.value)
            elif isinstance(eff, Corrupt):
                self.metrics.inc("transfer_corrupt")
                log.warning("value %r from %s: %s", fetch.vkey, fetch.src, eff.reason)
                self._switch(fetch)
            elif isinstance(eff, Stalled):
                self.metrics.inc("transfer_stalled")
                fetch.stalls += 1
                self._switch(fetch)

    def _complete(self, fetch: _Fetch, value: Value) -> None:
        name = fetch.names[-1] if fetch.names else None
        if name is not None:
            value = replace(value, source=name)
        value = self.landed(fetch.vkey, value)
        self.metrics.inc("transfer_values_received")
        self._forget(fetch)
        for src, offer in fetch.alternates:
            self.send(src, [CANCEL, offer.tid])
        for w in fetch.waiting:
            w.values[fetch.vkey] = value
            w.need.discard(fetch.vkey)
            if not w.need:
                self.deliver(w.src, fill(w.msg, w.values))

    def _forget(self, fetch: _Fetch) -> None:
        if self.fetches.get(fetch.vkey) is fetch:
            del self.fetches[fetch.vkey]
        for tid, src in fetch.offers.items():
            self._by_tid.pop((src, tid), None)
        for src, offer in fetch.alternates:
            self._by_tid.pop((src, offer.tid), None)

    # ------------------------------------------------------------ sources
    def source_gone(self, src: str) -> None:
        """``src`` left the view: its transfers go on from an alternate."""
        for fetch in list(self.fetches.values()):
            fetch.alternates = [a for a in fetch.alternates if a[0] != src]
            if fetch.src == src and not self._switch(fetch):
                fetch.src = ""  # the next offer of this key is taken up at once

    def drop_idle(self, needed: Callable[[str], bool], stalls: int = 2) -> list[str]:
        """Give up the fetches of values this side no longer needs that lost
        their source or stalled ``stalls`` times in a row: a sender that died
        or forgot its transfer never sends again, and the messages waiting
        for it are sent again by whoever still needs them (a new offer, a new
        fetch). Their sources are told (``vx``). The keys given up."""
        gone = [f for k, f in self.fetches.items()
                if not needed(k) and (not f.src or f.stalls >= stalls)]
        for fetch in gone:
            self._forget(fetch)
            for tid, src in fetch.offers.items():
                self.send(src, [CANCEL, tid])
            for src, offer in fetch.alternates:
                self.send(src, [CANCEL, offer.tid])
            if fetch.receiver.sink is not None:
                fetch.receiver.sink.discard()
            self.metrics.inc("transfer_abandoned")
        return [f.vkey for f in gone]

    async def tick(self) -> None:
        """Ask stalled sources again, or take up an alternate."""
        now = self.runtime.now()
        for fetch in list(self.fetches.values()):
            async with fetch.lock:
                effects = fetch.receiver.tick(now)
            await self._effects(fetch, effects)

    def close(self) -> None:
        for fetch in self.fetches.values():
            sink = fetch.receiver.sink
            if sink is not None:
                sink.discard()
        self.fetches.clear()
        self._by_tid.clear()


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a transfer failed", exc_info=task.exception())


class _ClientInbound(Inbound):
    """A client's receiving side: values land in memory, each fetched once
    per connection."""

    async def on_offers(self, node: str, frame: list) -> None:
        for raw in frame[1:]:
            if type(raw) is not list or not raw or raw[0] != "vo":
                raise ProtocolViolation("a node may send a client only offers")
            await self.on_offer(node, raw)


def values_inbound(runtime: Any, deliver: Callable[[list], None],
                   send: Callable[[str, list], None]) -> _ClientInbound:
    """The receiving side of a client: ``deliver([msg])`` gets each message
    (a :class:`~mesh.protocol.messages.Done`) once its value arrived whole."""
    from mesh.config import DEFAULT
    from mesh.protocol.messages import decode_client_reply
    from mesh.store._chunks import MemorySink
    from mesh.store._size import machine_memory

    def make_sink() -> tuple[Callable[[Sequence[int]], Sink], list[str | None]]:
        return MemorySink, []
    return _ClientInbound(
        runtime, decode=decode_client_reply, send=send,
        deliver=lambda _src, msg: deliver([msg]), make_sink=make_sink,
        have=lambda _key: None, landed=lambda _key, value: value,
        window=DEFAULT.transfer_window, stall_after=DEFAULT.transfer_stall, metrics=Metrics(),
        max_value=machine_memory())
