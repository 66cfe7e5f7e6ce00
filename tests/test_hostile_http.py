"""A flooded HTTP side: slow clients, idle connections, a low file-descriptor limit, deep or
truncated JSON bodies. Loopback only, bounded load; Twitch and the spool keep working."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ingress_egress.config import Settings
from ingress_egress.http import server as http_server
from ingress_egress.http.server import BoundedH11Protocol
from ingress_egress.observability import logs
from ingress_egress.simulator import ChatSimulator
from tests.support.processes import free_port
from tests.support.service import eventually, get, running, settings_for

pytestmark = pytest.mark.timeout(120)
BASE = Settings.defaults(message_bus_driver="memory")
FLOOD = 400  # slow clients at once in the fd-limit test


@contextmanager
def held(sockets: list[socket.socket]) -> Iterator[list[socket.socket]]:
    try:
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def slow_clients(port: int, count: int) -> list[socket.socket]:
    """Connections that send half a request head and then nothing (slowloris)."""
    out = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        out.append(sock)
    return out


def closed_now(sock: socket.socket) -> bool:
    """Whether the server has closed the connection already (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes the connection within ``timeout`` (an answer before the
    close, such as a 403, is read and skipped)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if sock.recv(65536) == b"":
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
    return False


async def test_slow_clients_are_cut_after_the_request_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(BoundedH11Protocol, "request_deadline_s", 0.5)
    async with running(settings_for(BASE, free_port(), ())) as service:
        port = service.http.port
        with held(await asyncio.to_thread(slow_clients, port, 50)) as sockets:
            cut = await asyncio.to_thread(lambda: [closed_by_server(sock, 3.0) for sock in sockets])
            assert all(cut)
            assert (await get(service, "/healthz")).status_code == 200
            assert service.view.debug_snapshot()["http"]["timedOut"] >= 50


async def test_a_slow_body_is_cut_too_but_a_slow_app_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(BoundedH11Protocol, "request_deadline_s", 0.5)
    async with running(settings_for(BASE, free_port(), ()), keepalive_idle_s=30) as service:
        port = service.http.port
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        with held([sock]):
            sock.sendall(
                b"POST /_admin/channels HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
            )
            assert await asyncio.to_thread(closed_by_server, sock, 5.0)
        # A client that sent its whole request keeps its connection past the deadline: it
        # asks again and again until a slow client that came after it has been cut.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            (marker,) = await asyncio.to_thread(slow_clients, port, 1)
            with held([marker]):

                async def answered_until_the_deadline() -> bool:
                    assert (await client.get("/healthz")).status_code == 200
                    return closed_now(marker)

                await eventually(answered_until_the_deadline, 10, "the deadline", interval=0.1)
            assert (await client.get("/healthz")).status_code == 200


async def test_over_the_connection_cap_the_oldest_idle_connection_makes_room(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http_server, "connection_limit", lambda: 8)
    async with running(settings_for(BASE, free_port(), ())) as service:
        port = service.http.port
        with held(await asyncio.to_thread(slow_clients, port, 40)):
            await eventually(lambda: service.http.stats()["refused"] >= 32, what="refusals")
            assert service.http.stats()["open"] <= 8
            for _ in range(5):  # probes still get in
                assert (await get(service, "/healthz")).status_code == 200


async def test_deep_or_huge_json_is_a_4xx_not_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for(BASE, free_port(), (), admin_token="admin-token-123")
    headers = {"Authorization": "Bearer admin-token-123"}
    async with running(settings) as service:
        url = f"http://127.0.0.1:{service.http.port}/_admin/channels"
        async with httpx.AsyncClient() as client:
            deep = b"[" * 100_000 + b"]" * 100_000
            response = await client.post(url, content=deep, headers=headers)
            assert response.status_code == 400
            assert "JSON" in response.json()["error"]
            big = b'{"add": ["' + b"a" * (2 << 20) + b'"]}'
            assert (await client.post(url, content=big, headers=headers)).status_code == 413
            ok = await client.post(url, json={"add": ["forsen"]}, headers=headers)
            assert ok.status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_a_client_hanging_up_mid_body_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(BASE, free_port(), (), admin_token="admin-token-123")
    async with running(settings) as service:
        for _ in range(5):  # hang up mid-body
            sock = socket.create_connection(("127.0.0.1", service.http.port))
            sock.sendall(
                b"POST /_admin/channels HTTP/1.1\r\nHost: x\r\n"
                b'Authorization: Bearer admin-token-123\r\nContent-Length: 1000\r\n\r\n{"add"'
            )
            # The server has the request head and part of the body (all sent before the
            # close), then sees the hang-up.
            await eventually(lambda: service.http.stats()["open"] == 1, what="accepted")
            sock.close()
            await eventually(lambda: service.http.stats()["open"] == 0, what="hang-up seen")
        assert (await get(service, "/healthz")).status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_repeated_records_are_rate_limited() -> None:
    stream = io.StringIO()
    limiter = logs.RepeatLimiter(burst=10, window_s=60)
    handler = logs.configure("INFO", log_format="text", stream=stream)
    handler.filters.insert(0, limiter)  # a fresh window for this test
    handler.removeFilter(logs.REPEATS)
    irc = logging.getLogger("ingress_egress.irc")
    for n in range(5000):
        irc.warning("unparseable line (%s): %r", "no command", f"line {n}")
    aio = logging.getLogger("asyncio")
    for _ in range(5000):
        aio.error("socket.accept() out of system resource")
    irc.info("a different record")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 21
    assert limiter.suppressed == 2 * 4990
    assert "at most 10 per 60 s" in lines[9]


def _limit_fds(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_a_connection_flood_at_a_low_fd_limit_leaves_twitch_and_the_spool_working(
    tmp_path: Path,
) -> None:
    fd_limit = 128  # HTTP connections capped at a quarter: 32
    out_path = tmp_path / "stdout.jsonl"
    port = free_port()
    async with ChatSimulator(rate=300) as sim:
        env = {
            **os.environ,
            "MESSAGE_BUS_DRIVER": "stdout",
            "TWITCH_CHANNELS": "alpha",
            "TWITCH_IRC_URL": f"irc://127.0.0.1:{sim.port}",
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "SPOOL_DIR": str(tmp_path / "spool"),
            "LOG_FORMAT": "json",
        }
        with out_path.open("wb") as out_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ingress_egress", "serve"],
                env=env,
                stdout=out_file,
                stderr=subprocess.PIPE,
                preexec_fn=lambda: _limit_fds(fd_limit),
            )
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    await eventually_http(client, "/readyz", 200)
                    with held(await asyncio.to_thread(slow_clients, port, FLOOD)):
                        before = out_path.stat().st_size
                        peak = 0

                        async def flood_handled() -> bool:
                            """Sampling the fd count, until every flood connection has been
                            accepted, refused or cut."""
                            nonlocal peak
                            peak = max(peak, _open_fds(proc.pid))
                            http = (await client.get("/_debug/twitch")).json()["http"]
                            gone = http["refused"] + http["timedOut"]
                            return gone >= FLOOD - http["maxConnections"]

                        await eventually(flood_handled, 30, "the flood handled", interval=0.1)
                        assert (await client.get("/healthz")).status_code == 200
                        debug = (await client.get("/_debug/twitch")).json()
                        # chat still written
                        await eventually(lambda: out_path.stat().st_size > before, 10, "chat")
                    assert peak < fd_limit - 16, peak
                    assert debug["http"]["maxConnections"] == fd_limit // 4
                    assert debug["http"]["refused"] > 0
                    assert debug["queue"]["spool"] is not None
                    assert debug["counters"]["refused"] == 0  # the spool took everything
            finally:
                proc.terminate()
                _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert b"Traceback" not in err, err.decode()[-3000:]
        assert b"out of system resource" not in err
        assert len(err.splitlines()) < 50


async def eventually_http(client: httpx.AsyncClient, path: str, status: int) -> None:
    async def answers() -> bool:
        try:
            return (await client.get(path)).status_code == status
        except httpx.HTTPError:
            return False

    await eventually(answers, 30, f"{path} answering {status}", interval=0.1)
