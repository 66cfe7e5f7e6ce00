"""The embedded HTTP server: each one counts its own connections. Two servers in one process
(two services in one test, the demo) never see, nor reset, each other's counts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from ingress_egress.http import server as http_server
from ingress_egress.http.server import BoundedH11Protocol, EmbeddedServer
from tests.support.processes import free_port
from tests.support.service import eventually

pytestmark = pytest.mark.timeout(60)


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


def app() -> Starlette:
    return Starlette(routes=[Route("/ping", ping)])


@asynccontextmanager
async def serving(monkeypatch: pytest.MonkeyPatch, cap: int) -> AsyncIterator[EmbeddedServer]:
    """A real server on a free port of 127.0.0.1, capped at ``cap`` connections."""
    monkeypatch.setattr(http_server, "connection_limit", lambda: cap)
    server = EmbeddedServer(app(), "127.0.0.1", free_port())
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def idle_clients(port: int, count: int) -> list[socket.socket]:
    """Connections that send half a request head and then nothing."""
    out = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        out.append(sock)
    return out


async def test_two_servers_in_one_process_keep_their_own_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(BoundedH11Protocol, "request_deadline_s", 0.3)
    async with serving(monkeypatch, cap=4) as flooded, serving(monkeypatch, cap=64) as quiet:
        assert flooded.stats()["maxConnections"] == 4
        assert quiet.stats()["maxConnections"] == 64  # the second server's cap is its own
        sockets = await asyncio.to_thread(idle_clients, flooded.port, 12)
        try:
            await eventually(lambda: flooded.stats()["refused"] >= 8, what="refusals")
            await eventually(lambda: flooded.stats()["timedOut"] >= 1, what="time-outs")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{quiet.port}") as client:
                assert (await client.get("/ping")).text == "pong"
            assert quiet.stats() | {"open": 0} == {
                "open": 0,
                "maxConnections": 64,
                "refused": 0,
                "timedOut": 0,
            }
            counted = flooded.stats()
            async with serving(monkeypatch, cap=8) as third:  # starting one resets nothing
                assert third.stats() == {
                    "open": 0,
                    "maxConnections": 8,
                    "refused": 0,
                    "timedOut": 0,
                }
                assert flooded.stats()["refused"] >= counted["refused"]
                assert flooded.stats()["timedOut"] >= counted["timedOut"]
        finally:
            for sock in sockets:
                sock.close()
