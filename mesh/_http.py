"""aiohttp specifics of the real runtime: the HTTP server, the shared client
session and the websocket :class:`~mesh.runtime.Channel`.

Private to :mod:`mesh.realtime`. Every aiohttp, OS and timeout error is
translated here into :class:`~mesh.runtime.Unreachable` (requests and
connects) or :class:`~mesh.runtime.ChannelClosed` (channels).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import aiohttp
from aiohttp import web

from mesh.runtime import Address, ChannelClosed, ChannelHandler, RequestHandler, Unreachable

log = logging.getLogger("mesh.realtime")

_CHUNK = 64 * 1024
_SHUTDOWN_TIMEOUT = 1.0
"""Seconds in-flight requests get to finish when a server closes."""

_CHANNEL_ERRORS = (ConnectionError, aiohttp.ClientError, asyncio.TimeoutError)

GetHandler = Callable[
    [str, Mapping[str, str], Mapping[str, str]],
    Awaitable[tuple[int, dict[str, str], "bytes | AsyncIterator[bytes]"]],
]
"""``(path, headers, query) -> (status, headers, body)`` for a plain GET (read-only
pages, see :mod:`mesh.ops`); a body that is an async iterator is streamed."""


async def _page(request: web.Request, on_get: GetHandler) -> web.StreamResponse:
    status, headers, body = await on_get(request.path, request.headers, request.query)
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


class WebSocketChannel:
    """A :class:`~mesh.runtime.Channel` over one websocket (server or client
    side). Binary messages only: a text message from the peer closes it."""

    def __init__(self, ws: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

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

    def __init__(self, runner: web.AppRunner, channels: set[WebSocketChannel]) -> None:
        self._runner = runner
        self._channels = channels
        self._closed = False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        channels = list(self._channels)
        if channels:
            await asyncio.gather(*(ch.close() for ch in channels))
        await self._runner.cleanup()


async def serve(
    bind: Address,
    on_request: RequestHandler,
    on_channel: ChannelHandler,
    *,
    max_body: int,
    ws_close_timeout: float,
    on_get: GetHandler | None = None,
) -> HttpServer:
    """Listen on ``bind``: POST to any path goes to ``on_request``; a GET with
    a websocket upgrade to any path goes to ``on_channel``, any other GET to
    ``on_get`` when given."""
    channels: set[WebSocketChannel] = set()

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method == "POST":
            body = await read_bounded(request.content, max_body + 1)
            try:
                status, reply = await on_request(path, body)
            except Exception:
                log.exception("request handler for %s failed", path)
                return web.Response(status=500)
            response = web.Response(
                status=status, body=reply, content_type="application/octet-stream"
            )
            if len(body) > max_body:
                response.force_close()  # do not drain the rest of an oversized body
            return response
        if request.method == "GET":
            ws = web.WebSocketResponse(max_msg_size=max_body, timeout=ws_close_timeout)
            if not ws.can_prepare(request).ok:
                if on_get is not None:
                    return await _page(request, on_get)
                return web.Response(status=400, text="websocket upgrade expected\n")
            await ws.prepare(request)
            channel = WebSocketChannel(ws)
            channels.add(channel)
            try:
                await on_channel(path, channel)
            except ChannelClosed:
                pass  # the normal end of a conversation
            except Exception:
                log.exception("channel handler for %s failed", path)
            finally:
                channels.discard(channel)
                await channel.close()
            return ws
        return web.Response(status=405, text="mesh speaks POST and websocket GET only\n")

    app = web.Application(client_max_size=max_body + 1)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT
    )
    await runner.setup()
    site = web.TCPSite(runner, bind[0], bind[1])
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return HttpServer(runner, channels)


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

    async def request(self, addr: Address, path: str, body: bytes, timeout: float) -> bytes:
        where = f"{addr[0]}:{addr[1]}{path}"
        session = self._get_session()
        try:
            async with (
                asyncio.timeout(timeout),
                session.post(
                    url(addr, path),
                    data=body,
                    headers={"Content-Type": "application/octet-stream"},
                ) as resp,
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

    async def connect(self, addr: Address, path: str, timeout: float) -> WebSocketChannel:
        where = f"{addr[0]}:{addr[1]}{path}"
        session = self._get_session()
        try:
            async with asyncio.timeout(timeout):
                ws = await session.ws_connect(
                    url(addr, path),
                    max_msg_size=self._max_body,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._ws_close_timeout),
                )
        except TimeoutError:
            raise Unreachable(f"{where} did not accept a channel within {timeout:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise Unreachable(f"{where} refused a channel: {describe(exc)}") from None
        return WebSocketChannel(ws)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
