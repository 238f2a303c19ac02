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
  sealed frame carrying both nonces. Every message on the channel then ends
  in a 16-byte binding MAC over (direction, sequence number, the frame's
  header and tag) under a key derived from both nonces, which only the two
  ends know (they only ever crossed the wire encrypted). A frame recorded on
  one connection fails on any other, and a dropped, repeated or reordered
  message ends the channel.

The sealed frames themselves (channel messages are frames of the HTTP codec)
are unchanged: the MAC covers their tag, which authenticates them whole, so
binding costs O(1) per message.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
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

__all__ = ["BoundChannel", "SecureRuntime"]

log = logging.getLogger("mesh.wire")

BINDING_LEN = 16
_NONCE = 16


def _binding_key(client_nonce: bytes, server_nonce: bytes) -> bytes:
    return hashlib.sha256(b"mesh channel binding\x00" + client_nonce + server_nonce).digest()


class BoundChannel:
    """A :class:`~mesh.runtime.Channel` whose messages are bound to this
    connection (see the module docstring). ``recv`` returns a memoryview of
    the message without its MAC."""

    __slots__ = ("_inner", "_key", "_on_drop", "_rx", "_rx_dir", "_tx", "_tx_dir")

    def __init__(self, inner: Channel, key: bytes, initiator: bool,
                 on_drop: Callable[[str], None]) -> None:
        self._inner = inner
        self._key = key
        self._tx_dir, self._rx_dir = (b"\x01", b"\x02") if initiator else (b"\x02", b"\x01")
        self._tx = 0
        self._rx = 0
        self._on_drop = on_drop

    def _mac(self, direction: bytes, seq: int, data: Any) -> bytes:
        view = memoryview(data)
        n = len(view)
        covered = direction + seq.to_bytes(8, "big") + n.to_bytes(8, "big")
        covered += bytes(view[:F.HEADER_LEN]) + bytes(view[max(0, n - F.TAG_LEN):])
        return hmac.digest(self._key, covered, "sha256")[:BINDING_LEN]

    async def send(self, data: bytes) -> None:
        self._tx += 1
        await self._inner.send(b"".join((data, self._mac(self._tx_dir, self._tx, data))))

    async def send_reserved(self, buf: bytearray) -> None:
        """Send ``buf[:-BINDING_LEN]``, its last :data:`BINDING_LEN` bytes
        being room left for the MAC (written in place: a large chunk frame is
        not copied again to append it)."""
        self._tx += 1
        data = memoryview(buf)[:-BINDING_LEN]
        buf[-BINDING_LEN:] = self._mac(self._tx_dir, self._tx, data)
        data.release()
        await self._inner.send(buf)  # type: ignore[arg-type]

    async def recv(self) -> bytes:
        raw = await self._inner.recv()
        view = memoryview(raw)
        if len(view) <= BINDING_LEN:
            return await self._broken("binding", "a message too short to carry its binding")
        self._rx += 1
        data = view[:-BINDING_LEN]
        if not hmac.compare_digest(bytes(view[-BINDING_LEN:]),
                                   self._mac(self._rx_dir, self._rx, data)):
            return await self._broken("binding", "a message not bound to this connection "
                                                 "(moved, repeated, dropped or reordered)")
        return data  # type: ignore[return-value]

    async def _broken(self, reason: str, why: str) -> bytes:
        self._on_drop(reason)
        await self._inner.close()
        raise ChannelClosed(why)

    async def close(self) -> None:
        await self._inner.close()


class SecureRuntime:
    """``inner`` with admission tokens and bound channels; see the module
    docstring. ``codec`` is the HTTP codec (it seals and opens the tokens);
    ``unauth_body`` is the largest body read without a token."""

    def __init__(self, inner: Runtime, codec: Codec, *, unauth_body: int,
                 metrics: Metrics | None = None) -> None:
        self.inner = inner
        self.codec = codec
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
        tag = bytes(memoryview(body)[-F.TAG_LEN:])
        token = self.codec.seal({"k": "request", "p": path, "n": len(body), "t": tag})
        return await self.inner.request(addr, path, body, timeout, token=token)

    async def connect(self, addr: Address, path: str, timeout: float) -> Channel:
        nonce = self.inner.token_bytes(_NONCE)
        token = self.codec.seal({"k": "channel", "p": path, "c": nonce})
        ch = await self.inner.connect(addr, path, timeout, token=token)
        try:
            reply = self.codec.open(ch.reply)  # type: ignore[attr-defined]
            if (type(reply) is not dict or reply.get("c") != nonce
                    or type(reply.get("s")) is not bytes or len(reply["s"]) != _NONCE):
                raise WireError("malformed", "a handshake reply that does not answer ours")
        except WireError as exc:
            await ch.close()
            self._dropped(exc.reason, f"handshake reply from {addr[0]}:{addr[1]}: {exc}")
            raise Unreachable(f"{addr[0]}:{addr[1]}{path} answered the handshake with a frame "
                              f"we refused: {exc}") from None
        return BoundChannel(ch, _binding_key(nonce, reply["s"]), True, self._count)

    # --- server side -------------------------------------------------------------
    async def serve(self, bind: Address, on_request: RequestHandler,
                    on_channel: ChannelHandler, **plain: Any) -> Any:
        """``plain`` (e.g. ``on_get=`` of the real runtime) passes through."""
        async def request(path: str, body: bytes, admission: Admission | None = None) -> Any:
            if admission is not None and admission.context is not None and (
                    bytes(memoryview(body)[-F.TAG_LEN:]) != admission.context):
                self._dropped("binding", f"a body for {path} that its token does not name")
                return 400, b""
            return await on_request(path, body)

        async def channel(path: str, ch: Channel, admission: Admission | None = None) -> None:
            if admission is None or admission.context is None:
                await ch.close()
                return
            await on_channel(path, BoundChannel(ch, admission.context, False, self._count))

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
        reply = self.codec.seal({"c": nonce, "s": server_nonce})
        return Admission(max_body=self.codec.max_size, reply=reply,
                         context=_binding_key(nonce, server_nonce))

    def _count(self, reason: str) -> None:
        self.metrics.inc(f"wire_dropped_{reason}")

    def _dropped(self, reason: str, what: str) -> None:
        self._count(reason)
        self._noise.warning(f"gate:{reason}", "refused %s", what)

    async def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            await close()
