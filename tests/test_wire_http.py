"""The real HTTP layer with a gate: plain GET pages that do their own
authentication beside gated POSTs and websocket upgrades."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Mapping

from mesh.realtime import RealRuntime, run
from mesh.runtime import Admission, Unreachable
from tests.procs import free_ports


def _get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_plain_get_pages_bypass_the_gate_and_do_their_own_auth() -> None:
    port = free_ports(1)[0]
    asked: list[tuple[str, str]] = []

    def gate(kind: str, path: str, token: bytes | None, length: int | None
             ) -> Admission | None:
        asked.append((kind, path))
        return None if token != b"ok" else Admission(max_body=10, context=b"x")

    async def page(path: str, headers: Mapping[str, str], query: Mapping[str, str]
                   ) -> tuple[int, dict[str, str], bytes]:
        plain = {"Content-Type": "text/plain"}
        if path != "/metrics":
            return 404, plain, b""
        if headers.get("Authorization") != "Bearer t0ken":
            return 401, plain, b"bearer token needed\n"
        return 200, plain, b"up 1\n"

    async def on_request(path: str, body: bytes, admission: Admission) -> tuple[int, bytes]:
        return 200, body

    async def on_channel(path: str, channel: object, admission: Admission) -> None:
        raise AssertionError("no channel is admitted")

    async def main() -> None:
        rt = RealRuntime()
        server = await rt.serve(("127.0.0.1", port), on_request, on_channel, gate=gate,
                                on_get=page)
        try:
            base = f"http://127.0.0.1:{port}"
            loop = asyncio.get_running_loop()
            got = await loop.run_in_executor(
                None, lambda: _get(base + "/metrics", {"Authorization": "Bearer t0ken"}))
            assert got == (200, b"up 1\n")
            got = await loop.run_in_executor(None, lambda: _get(base + "/metrics"))
            assert got[0] == 401
            assert await rt.request(("127.0.0.1", port), "/p", b"body", 5.0, token=b"ok") == b"body"
            try:
                await rt.request(("127.0.0.1", port), "/p", b"x" * 11, 5.0, token=b"ok")
                raise AssertionError("a body over the admitted size was read")
            except Unreachable as exc:
                assert "413" in str(exc)
            try:
                await rt.connect(("127.0.0.1", port), "/chan", 5.0)
                raise AssertionError("an upgrade without a token was answered")
            except Unreachable as exc:
                assert "401" in str(exc)
            assert ("channel", "/chan") in asked and ("request", "/metrics") not in asked
        finally:
            await server.close()
            await rt.close()

    run(main())
