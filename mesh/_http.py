"""aiohttp specifics of the real runtime: the HTTP server, the shared client
session and the websocket :class:`~mesh.runtime.Channel`.

Private to :mod:`mesh.realtime`. Every aiohttp, OS and timeout error is
translated here into :class:`~mesh.runtime.Unreachable` (requests and
connects) or :class:`~mesh.runtime.ChannelClosed` (channels).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web

from mesh._http_guard import Connections, Guarded, ServerLimits
from mesh.metrics import Metrics
from mesh.runtime import (
    Address,
    Admission,
    ChannelClosed,
    ChannelHandler,
    Gate,
    RequestHandler,
    Unreachable,
)

log = logging.getLogger("mesh.realtime")

_CHUNK = 64 * 1024
_SHUTDOWN_TIMEOUT = 1.0
"""Seconds in-flight requests get to finish when a server closes."""

_CHANNEL_ERRORS = (ConnectionError, aiohttp.ClientError, asyncio.TimeoutError)

AUTH_HEADER = "X-Mesh-Auth"
"""Carries the admission token of a request or channel upgrade (base64). The
gate's reply to a channel's token is the channel's first message."""


def _encode_token(token: bytes) -> str:
    return base64.b64encode(token).decode()


def _decode_token(text: str | None) -> bytes | None:
    if text is None:
        return None
    if len(text) > 4096:
        return b""  # refused by the gate as truncated garbage
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return b""


GetHandler = Callable[
    [str, Mapping[str, str], Mapping[str, str]],
    Awaitable[tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]"]],
]
"""``(path, headers, query) -> (status, headers, body)`` for a plain GET (read-only
pages, see :mod:`mesh.ops`); a body that is an async iterator is streamed."""


async def _page(request: web.Request, on_get: GetHandler, conns: Connections
                ) -> web.StreamResponse:
    status, headers, body = await on_get(request.path, request.headers, request.query)
    if status < 400:  # the page accepted the reader (its own token check): no handshake deadline
        conns.authenticated(request.transport)
    if isinstance(body, bytes):
        return web.Response(status=status, body=body, headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    try:
        await response.prepare(request)
        async for chunk in body:
            await response.write(chunk)
    except (ConnectionError, aiohttp.ClientError):
        pass  # the reader went away: the normal end of a stream
    finally:
        await body.aclose()  # type: ignore[attr-defined]
    return response


def describe(exc: BaseException) -> str:
    """A short reason for a client error, e.g. ``connection refused``."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return "connection refused (is a mesh node listening there?)"
        return f"cannot connect: {os_error.strerror or os_error}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def url(addr: Address, path: str, scheme: str = "http") -> str:
    host, port = addr
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


async def read_bounded(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Read ``stream`` to its end or until ``limit`` bytes, whichever is first."""
    chunks: list[bytes] = []
    n = 0
    while n < limit:
        chunk = await stream.read(min(_CHUNK, limit - n))
        if not chunk:
            break
        chunks.append(chunk)
        n += len(chunk)
    return b"".join(chunks)


def _unmasked(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Send this client websocket's frames unmasked. RFC 6455 masks a
    client's frames so that a browser's script cannot make a proxy's cache
    read attacker-chosen bytes; between mesh processes every frame is sealed
    (random-looking ciphertext) and no browser writes to the channel, while
    masking costs two copies of every chunk of a transfer. aiohttp's reader
    accepts unmasked frames (it unmasks only frames that say they are
    masked)."""
    writer = getattr(ws, "_writer", None)
    if writer is not None and hasattr(writer, "use_mask"):
        writer.use_mask = False


class WebSocketChannel:
    """A :class:`~mesh.runtime.Channel` over one websocket (server or client
    side). Binary messages only: a text message from the peer closes it."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                 reply: bytes | None = None) -> None:
        self._ws = ws
        self.reply = reply
        """The server gate's answer to our token (client side), which is
        the first message of a channel opened with a token."""

    async def send(self, data: bytes) -> None:
        if self._ws.closed:
            raise ChannelClosed("the channel is closed")
        try:
            await self._ws.send_bytes(data)
        except _CHANNEL_ERRORS as exc:
            raise ChannelClosed(f"the channel broke while sending: {exc}") from None

    async def recv(self) -> bytes:
        if self._ws.closed:
            raise ChannelClosed("the channel is closed")
        msg = await self._ws.receive()
        if msg.type is aiohttp.WSMsgType.BINARY:
            return msg.data
        if msg.type is aiohttp.WSMsgType.TEXT:
            await self.close()
            raise ChannelClosed("the peer sent a text message; channels carry binary frames only")
        if msg.type is aiohttp.WSMsgType.ERROR:
            raise ChannelClosed(f"the channel broke: {msg.data}")
        raise ChannelClosed("the peer closed the channel")

    async def close(self) -> None:
        try:
            await self._ws.close()
        except _CHANNEL_ERRORS as exc:
            log.debug("closing a broken channel: %s", exc)

    @property
    def closed(self) -> bool:
        return self._ws.closed


class HttpServer:
    """A listening aiohttp server; :meth:`close` closes open channels, gives
    in-flight requests a moment, then stops. Idempotent."""

    def __init__(self, runner: web.AppRunner, server: asyncio.AbstractServer,
                 channels: set[WebSocketChannel]) -> None:
        self._runner = runner
        self._server = server
        self._channels = channels
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.close()
        channels = list(self._channels)
        if channels:
            await asyncio.gather(*(ch.close() for ch in channels))
        await self._runner.cleanup()


async def serve(
    bind: Address,
    on_request: RequestHandler,
    on_channel: ChannelHandler,
    *,
    limits: ServerLimits,
    gate: Gate | None = None,
    metrics: Metrics | None = None,
    on_get: GetHandler | None = None,
) -> HttpServer:
    """Listen on ``bind``: POST to any path goes to ``on_request``; a GET with
    a websocket upgrade to any path goes to ``on_channel``; any other GET to
    ``on_get`` when given (read-only pages: neither gated nor sealed, they do
    their own authentication and never read a body). With a ``gate``, requests and
    upgrades are admitted first (their token in the ``X-Mesh-Auth`` header)
    and a body is read up to the admitted size, within ``body_timeout``."""
    channels: set[WebSocketChannel] = set()
    conns = Connections(limits, metrics)
    max_body = limits.max_body

    def refuse(status: int, text: str) -> web.Response:
        response = web.Response(status=status, text=text)
        response.force_close()  # never read (or drain) a refused body
        return response

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        token = _decode_token(request.headers.get(AUTH_HEADER))
        admission: Admission | None = None
        if request.method == "POST":
            limit = max_body
            if gate is not None:
                admission = gate("request", path, token, request.content_length)
                if admission is None:
                    return refuse(401, "authenticate first (no valid X-Mesh-Auth token)\n")
                limit = min(limit, admission.max_body)
                if admission.context is not None:
                    conns.authenticated(request.transport)
            if (gate is not None and request.content_length is not None
                    and request.content_length > limit):
                return refuse(413, f"bodies here are at most {limit} bytes\n")
            try:
                async with asyncio.timeout(limits.body_timeout):
                    body = await read_bounded(request.content, limit + 1)
            except TimeoutError:
                conns.metrics.inc("http_closed_slow_body")
                return refuse(408, "the body did not arrive in time\n")
            try:
                if gate is None:
                    status, reply = await on_request(path, body)
                else:
                    status, reply = await on_request(path, body, admission)
            except Exception:
                log.exception("request handler for %s failed", path)
                return web.Response(status=500)
            response = web.Response(
                status=status, body=reply, content_type="application/octet-stream"
            )
            if len(body) > limit:
                response.force_close()  # do not drain the rest of an oversized body
            return response
        if request.method == "GET" and on_get is not None and not _is_upgrade(request):
            return await _page(request, on_get, conns)
        if request.method == "GET":
            if gate is not None:
                admission = gate("channel", path, token, None)
                if admission is None:
                    return refuse(401, "authenticate first (no valid X-Mesh-Auth token)\n")
            ws = web.WebSocketResponse(max_msg_size=max_body, timeout=limits.ws_close_timeout,
                                       heartbeat=limits.ws_heartbeat)
            if not ws.can_prepare(request).ok:
                return refuse(400, "websocket upgrade expected\n")
            if admission is not None and admission.context is not None:
                conns.authenticated(request.transport)
            await ws.prepare(request)
            channel = WebSocketChannel(ws)
            channels.add(channel)
            try:
                if admission is not None and admission.reply is not None:
                    await channel.send(admission.reply)  # the handshake's answer comes first
                if gate is None:
                    await on_channel(path, channel)
                else:
                    await on_channel(path, channel, admission)
            except ChannelClosed:
                pass  # the normal end of a conversation
            except Exception:
                log.exception("channel handler for %s failed", path)
            finally:
                channels.discard(channel)
                await channel.close()
            return ws
        return refuse(405, "mesh speaks POST and websocket GET only\n")

    app = web.Application(client_max_size=max_body + 1)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    factory = runner.server
    assert factory is not None
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: Guarded(factory(), conns), bind[0], bind[1], reuse_address=True
        )
    except BaseException:
        await runner.cleanup()
        raise
    return HttpServer(runner, server, channels)


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class Client:
    """One keep-alive client session, created on first use in the running loop."""

    def __init__(self, *, max_body: int, ws_close_timeout: float) -> None:
        self._max_body = max_body
        self._ws_close_timeout = ws_close_timeout
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                auto_decompress=False,
            )
            self._loop = loop
        return self._session

    async def request(self, addr: Address, path: str, body: bytes, timeout: float,
                      token: bytes | None = None) -> bytes:
        where = f"{addr[0]}:{addr[1]}{path}"
        session = self._get_session()
        headers = {"Content-Type": "application/octet-stream"}
        if token is not None:
            headers[AUTH_HEADER] = _encode_token(token)
        try:
            async with (
                asyncio.timeout(timeout),
                session.post(url(addr, path), data=body, headers=headers) as resp,
            ):
                if resp.status != 200:
                    raise Unreachable(f"{where} answered HTTP {resp.status}")
                data = await read_bounded(resp.content, self._max_body + 1)
        except TimeoutError:
            raise Unreachable(f"{where} did not answer within {timeout:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise Unreachable(f"{where} is unreachable: {describe(exc)}") from None
        if len(data) > self._max_body:
            raise Unreachable(f"{where} answered with more than {self._max_body} bytes")
        return data

    async def connect(self, addr: Address, path: str, timeout: float,
                      token: bytes | None = None) -> WebSocketChannel:
        where = f"{addr[0]}:{addr[1]}{path}"
        session = self._get_session()
        headers = {} if token is None else {AUTH_HEADER: _encode_token(token)}
        try:
            async with asyncio.timeout(timeout):
                ws = await session.ws_connect(
                    url(addr, path),
                    max_msg_size=self._max_body,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._ws_close_timeout),
                    headers=headers,
                )
        except TimeoutError:
            raise Unreachable(f"{where} did not accept a channel within {timeout:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise Unreachable(f"{where} refused a channel: {describe(exc)}") from None
        _unmasked(ws)
        channel = WebSocketChannel(ws)
        if token is not None:  # the gate's answer is the first message
            try:
                async with asyncio.timeout(timeout):
                    channel.reply = await channel.recv()
            except (TimeoutError, ChannelClosed) as exc:
                await channel.close()
                raise Unreachable(f"{where} did not answer the handshake: {exc}") from None
        return channel

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
