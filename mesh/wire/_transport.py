"""Authenticated handshakes and connection binding, around any runtime.

:class:`SecureRuntime` wraps a :class:`~mesh.runtime.Runtime` and is one
itself. It adds, on every HTTP request and channel, an *admission token*: a
small frame sealed with the HTTP codec (so it carries sender, counter and
timestamp and opens once), sent before the body or the websocket upgrade
(the ``X-Mesh-Auth`` header in the real runtime). The server's *gate*
checks it before it reads a byte of the body or upgrades:

* a request token names the path, the body length and the body frame's GCM
  tag, so it cannot be moved to another request; without a token only a
  small body (``Config.unauth_body``) is read at all;
* a channel token carries the client's nonce; the server answers with a
  sealed frame carrying both nonces. Both ends derive two per-connection
  keys (one per direction) from the channel key of the token's secret and
  the two nonces, which only the two ends know (they only ever crossed the
  wire encrypted). Every message on the channel is then a channel frame
  (:mod:`mesh.wire._connection`) sealed with those keys, its counter the
  AES-GCM nonce: a frame recorded on one connection fails on any other, and
  a repeated, dropped or reordered one ends the channel. No per-message
  envelope, timestamp, replay table or separate MAC.

Which key seals (:mod:`mesh.wire._keys_peers`): a request or channel to an
address is sealed with the key :class:`PeerKeys` chooses for it, a failed one
marks that key for the address, and the server answers in the key the
request or the handshake used; a channel's keys derive from its handshake's
secret. The handshake's answer advertises the key ids the server holds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from mesh.errors import WireError
from mesh.metrics import Metrics, RateLimitedLog
from mesh.runtime import (
    Address,
    Admission,
    Channel,
    ChannelClosed,
    ChannelHandler,
    DatagramHandler,
    RequestHandler,
    Runtime,
    Unreachable,
)
from mesh.wire import _frame as F
from mesh.wire._codec import Codec
from mesh.wire._connection import ChannelCipher, SealedChunk
from mesh.wire._keys_peers import PeerKeys, parse_key_ids

__all__ = ["BoundChannel", "SealedChunk", "SecureRuntime"]

log = logging.getLogger("mesh.wire")

_NONCE = 16


class BoundChannel:
    """A :class:`~mesh.runtime.Channel` that seals what it sends and opens
    what it receives with its connection's keys (:mod:`mesh.wire._connection`).

    ``send(body)`` takes the plain body (mesh sends msgpack); ``recv()``
    returns the next plain body, or a :class:`SealedChunk` for a chunk frame
    (its data is decrypted later, off the loop, by ``open()``).
    ``send_chunk`` sends one. A frame that fails any check is counted
    (``wire_dropped_<reason>``) and ends the channel (:class:`ChannelClosed`).
    """

    __slots__ = ("_cipher", "_inner", "_on_drop")

    def __init__(self, inner: Channel, cipher: ChannelCipher,
                 on_drop: Callable[[str], None]) -> None:
        self._inner = inner
        self._cipher = cipher
        self._on_drop = on_drop

    @property
    def key_id(self) -> bytes:
        """The key id of the secret this connection's keys derive from."""
        return self._cipher.key_id

    async def send(self, body: bytes | bytearray | memoryview) -> None:
        # sealed here, not by the caller: the counter follows the order in
        # which frames reach the inner channel, whichever task sends them
        await self._inner.send(self._cipher.seal(body))

    async def send_chunk(self, stream: bytes, index: int,
                         parts: Sequence[bytes | bytearray | memoryview]) -> int:
        """Send one chunk frame (see :meth:`ChannelCipher.seal_chunk`);
        returns its size on the wire."""
        frame = self._cipher.seal_chunk(stream, index, parts)
        await self._inner.send(frame)  # type: ignore[arg-type]
        return len(frame)

    async def recv(self) -> Any:
        raw = await self._inner.recv()
        try:
            return self._cipher.open(raw)
        except WireError as exc:
            self._on_drop(exc.reason)
            await self._inner.close()
            raise ChannelClosed(f"a frame refused on a bound channel: {exc}") from None

    async def close(self) -> None:
        await self._inner.close()


class SecureRuntime:
    """``inner`` with admission tokens and bound channels; see the module
    docstring. ``codec`` is the HTTP codec (it seals and opens the tokens);
    ``unauth_body`` is the largest body read without a token."""

    def __init__(self, inner: Runtime, codec: Codec, *, unauth_body: int,
                 metrics: Metrics | None = None, keys: PeerKeys | None = None) -> None:
        self.inner = inner
        self.codec = codec
        self.keys = keys if keys is not None else PeerKeys(codec.ring, inner)
        self.unauth_body = unauth_body
        self.metrics = metrics if metrics is not None else Metrics()
        self._noise = RateLimitedLog(log, inner.now)

    # --- delegated ------------------------------------------------------------
    @property
    def rng(self) -> Any:
        return self.inner.rng

    def now(self) -> float:
        return self.inner.now()

    def wall(self) -> float:
        return self.inner.wall()

    def token_bytes(self, n: int) -> bytes:
        return self.inner.token_bytes(n)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        return self.inner.call_later(delay, callback)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.inner.run_blocking(fn, *args)

    async def open_datagram(self, bind: Address, handler: DatagramHandler) -> Any:
        return await self.inner.open_datagram(bind, handler)

    # --- client side ------------------------------------------------------------
    async def request(self, addr: Address, path: str, body: bytes, timeout: float) -> bytes:
        kid = self.keys.choose(addr)
        body = self.keys.reseal(body, kid)
        tag = bytes(memoryview(body)[-F.TAG_LEN:])
        token = self.keys.reseal(
            self.codec.seal({"k": "request", "p": path, "n": len(body), "t": tag}), kid)
        try:
            reply = await self.inner.request(addr, path, body, timeout, token=token)
        except Unreachable:
            self.keys.failed(addr, kid)
            raise
        self.keys.answered(addr, kid)
        return reply

    async def connect(self, addr: Address, path: str, timeout: float) -> Channel:
        nonce = self.inner.token_bytes(_NONCE)
        kid = self.keys.choose(addr)
        token = self.keys.reseal(self.codec.seal({"k": "channel", "p": path, "c": nonce}), kid)
        try:
            ch = await self.inner.connect(addr, path, timeout, token=token)
        except Unreachable:
            self.keys.failed(addr, kid)
            raise
        try:
            reply = self.codec.open(ch.reply)  # type: ignore[attr-defined]
            if (type(reply) is not dict or reply.get("c") != nonce
                    or type(reply.get("s")) is not bytes or len(reply["s"]) != _NONCE):
                raise WireError("malformed", "a handshake reply that does not answer ours")
        except WireError as exc:
            await ch.close()
            self.keys.failed(addr, kid)
            self._dropped(exc.reason, f"handshake reply from {addr[0]}:{addr[1]}: {exc}")
            raise Unreachable(f"{addr[0]}:{addr[1]}{path} answered the handshake with a frame "
                              f"we refused: {exc}") from None
        held = parse_key_ids(reply.get("keys"))
        if held is not None:  # the server's advertisement (authenticated)
            self.keys.holds(addr, held)
        self.keys.heard(addr, kid)
        up, down = self.codec.ring.connection_keys(kid, nonce, reply["s"])
        return BoundChannel(ch, ChannelCipher(kid, up, down, self.codec.max_size), self._count)

    # --- server side -------------------------------------------------------------
    async def serve(self, bind: Address, on_request: RequestHandler,
                    on_channel: ChannelHandler, **plain: Any) -> Any:
        """``plain`` (e.g. ``on_get=`` of the real runtime) passes through."""
        async def request(path: str, body: bytes, admission: Admission | None = None) -> Any:
            if admission is not None and admission.context is not None and (
                    bytes(memoryview(body)[-F.TAG_LEN:]) != admission.context):
                self._dropped("binding", f"a body for {path} that its token does not name")
                return 400, b""
            status, reply = await on_request(path, body)
            # answered in the key the request used (a peer mid-rotation reads it)
            return status, self.keys.reseal(reply, bytes(memoryview(body)[4:8]))

        async def channel(path: str, ch: Channel, admission: Admission | None = None) -> None:
            if admission is None or admission.context is None:
                await ch.close()
                return
            kid, nonce, server_nonce = admission.context
            up, down = self.codec.ring.connection_keys(kid, nonce, server_nonce)
            cipher = ChannelCipher(kid, down, up, self.codec.max_size)
            await on_channel(path, BoundChannel(ch, cipher, self._count))

        return await self.inner.serve(bind, request, channel, gate=self.gate, **plain)

    def gate(self, kind: str, path: str, token: bytes | None, length: int | None
             ) -> Admission | None:
        """Admit (or refuse, ``None``) a request or channel before its body
        is read or it is upgraded."""
        if token is None:
            if kind == "request" and length is not None and length <= self.unauth_body:
                return Admission(max_body=self.unauth_body)
            self._dropped("no_token", f"a {kind} for {path} without a token")
            return None
        try:
            msg = self.codec.open(token)
            if type(msg) is not dict or msg.get("k") != kind or msg.get("p") != path:
                raise WireError("malformed", "a token for another kind of request or path")
            if kind == "request":
                tag, n = msg.get("t"), msg.get("n")
                if type(tag) is not bytes or type(n) is not int or (
                        length is not None and length != n):
                    raise WireError("malformed", "a request token that does not fit the body")
                return Admission(max_body=n, context=tag)
            nonce = msg.get("c")
            if type(nonce) is not bytes or len(nonce) != _NONCE:
                raise WireError("malformed", "a channel token without a nonce")
        except WireError as exc:
            self._dropped(exc.reason, f"a {kind} token for {path}: {exc}")
            return None
        server_nonce = self.inner.token_bytes(_NONCE)
        kid = bytes(token[4:8])  # the channel speaks the key its token used
        reply = self.keys.reseal(self.codec.seal(
            {"c": nonce, "s": server_nonce, "keys": self.keys.key_ids}), kid)
        return Admission(max_body=self.codec.max_size, reply=reply,
                         context=(kid, nonce, server_nonce))

    def _count(self, reason: str) -> None:
        self.metrics.inc(f"wire_dropped_{reason}")

    def _dropped(self, reason: str, what: str) -> None:
        self._count(reason)
        self._noise.warning(f"gate:{reason}", "refused %s", what)

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()
