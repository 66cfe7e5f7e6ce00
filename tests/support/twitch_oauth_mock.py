"""A programmable stand-in for Twitch's OAuth service (``/token`` and ``/validate``).

A Starlette app served by uvicorn inside the test's event loop on 127.0.0.1 and a free port.
It answers with Twitch's documented shapes and error bodies:

* ``POST /token`` (``grant_type=refresh_token``): ``200 {"access_token", "refresh_token",
  "expires_in", "scope": [...], "token_type": "bearer"}``; an unknown/revoked refresh token:
  ``400 {"status": 400, "message": "Invalid refresh token"}``; a wrong client: ``403
  {"status": 403, "message": "invalid client secret"}`` / ``400 {"status": 400, "message":
  "invalid client"}``.
* ``GET /validate`` (``Authorization: OAuth <token>``): ``200 {"client_id", "login", "scopes",
  "user_id", "expires_in"}``; otherwise ``401 {"status": 401, "message": "invalid access
  token"}``.

Knobs: rotate refresh tokens or not, make them single-use, queue failures (HTTP statuses or
``"hang"`` for a response slower than any client timeout), add delays, run a hook before a
refresh is answered, and count calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.waiting import eventually

DEFAULT_SCOPES = ("chat:read", "chat:edit")


@dataclass
class Grant:
    user_id: str
    login: str
    scopes: tuple[str, ...]
    expires_at: float = 0.0  # access tokens only
    used: bool = False  # refresh tokens only (single-use mode)


@dataclass
class TwitchOAuthMock:
    client_id: str = "mock-client-id"
    client_secret: str = "mock-client-secret"
    token_prefix: str = "tok_"
    expires_in: int = 14_400
    rotate_refresh_tokens: bool = True  # each refresh hands out a new refresh token ...
    single_use_refresh_tokens: bool = False  # ... and the old one stops working
    include_expires_in: bool = True
    token_delay: float = 0.0
    validate_delay: float = 0.0
    # Queued failures, consumed one per request: an HTTP status (500, 503, 429, ...) or "hang".
    token_failures: list[int | str] = field(default_factory=list)
    validate_failures: list[int | str] = field(default_factory=list)
    # Runs when a refresh request arrives, before it is answered (e.g. to win a race).
    on_token: Callable[[str], Awaitable[None]] | None = None

    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, Grant] = field(default_factory=dict)
    token_calls: int = 0
    validate_calls: int = 0
    refreshes_granted: int = 0
    validate_auth_headers: list[str] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)

    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    _server: uvicorn.Server | None = None
    _task: asyncio.Task | None = None
    _socket: socket.socket | None = None
    base_url: str = ""

    # -- token bookkeeping -------------------------------------------------------------

    def _new(self, kind: str) -> str:
        return f"{self.token_prefix}{kind}{next(self._counter)}_{secrets.token_hex(6)}"

    def issue(
        self,
        user_id: str = "1001",
        login: str = "testbot",
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        *,
        expires_in: int | None = None,
    ) -> tuple[str, str]:
        """A fresh (access_token, refresh_token) pair, as the oauth-flow service would get."""
        access, refresh = self._new("access"), self._new("refresh")
        lifetime = self.expires_in if expires_in is None else expires_in
        self.access[access] = Grant(user_id, login, scopes, expires_at=time.time() + lifetime)
        self.refresh[refresh] = Grant(user_id, login, scopes)
        return access, refresh

    def revoke_refresh(self, token: str) -> None:
        self.refresh.pop(token, None)

    def revoke_access(self, token: str) -> None:
        self.access.pop(token, None)

    def revoke_user(self, user_id: str) -> None:
        for table in (self.access, self.refresh):
            for token in [t for t, g in table.items() if g.user_id == user_id]:
                del table[token]

    def access_valid(self, token: str) -> bool:
        grant = self.access.get(token)
        return grant is not None and grant.expires_at > time.time()

    def refresh_valid(self, token: str) -> bool:
        grant = self.refresh.get(token)
        return grant is not None and not grant.used

    # -- HTTP --------------------------------------------------------------------------

    async def _failure(self, queue: list[int | str]) -> Response | None:
        if not queue:
            return None
        failure = queue.pop(0)
        if failure == "hang":
            await asyncio.Event().wait()  # never answers (stop() force-exits the server)
        status = int(failure)
        return JSONResponse(
            {"error": _reason(status), "status": status, "message": _reason(status)},
            status_code=status,
        )

    async def _token(self, request: Request) -> Response:
        self.token_calls += 1
        # Parsed by hand: Starlette's request.form() needs python-multipart.
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        self.token_forms.append(form)
        if self.token_delay:
            await asyncio.sleep(self.token_delay)
        failure = await self._failure(self.token_failures)
        if failure is not None:
            return failure
        if form.get("client_id") != self.client_id:
            return _error(400, "invalid client")
        if form.get("client_secret") != self.client_secret:
            return _error(403, "invalid client secret")
        if form.get("grant_type") != "refresh_token":
            return _error(400, "unsupported grant type")
        token = form.get("refresh_token", "")
        if self.on_token is not None:
            await self.on_token(token)
        grant = self.refresh.get(token)
        if grant is None or grant.used:
            return _error(400, "Invalid refresh token")
        access = self._new("access")
        self.access[access] = Grant(
            grant.user_id, grant.login, grant.scopes, expires_at=time.time() + self.expires_in
        )
        new_refresh = token
        if self.rotate_refresh_tokens:
            new_refresh = self._new("refresh")
            self.refresh[new_refresh] = Grant(grant.user_id, grant.login, grant.scopes)
            if self.single_use_refresh_tokens:
                grant.used = True
        self.refreshes_granted += 1
        body: dict[str, object] = {
            "access_token": access,
            "refresh_token": new_refresh,
            "scope": list(grant.scopes),
            "token_type": "bearer",
        }
        if self.include_expires_in:
            body["expires_in"] = self.expires_in
        return JSONResponse(body)

    async def _validate(self, request: Request) -> Response:
        self.validate_calls += 1
        header = request.headers.get("authorization", "")
        self.validate_auth_headers.append(header.split(" ", 1)[0])
        if self.validate_delay:
            await asyncio.sleep(self.validate_delay)
        failure = await self._failure(self.validate_failures)
        if failure is not None:
            return failure
        scheme, _, token = header.partition(" ")
        grant = self.access.get(token) if scheme.lower() in ("oauth", "bearer") else None
        if grant is None or grant.expires_at <= time.time():
            return _error(401, "invalid access token")
        return JSONResponse(
            {
                "client_id": self.client_id,
                "login": grant.login,
                "scopes": list(grant.scopes),
                "user_id": grant.user_id,
                "expires_in": max(0, int(grant.expires_at - time.time())),
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/validate", self._validate, methods=["GET"]),
            ]
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        server, task = self._server, self._task

        def started() -> bool:
            if task.done():
                task.result()  # raises what stopped it
            return server.started

        try:
            await eventually(started, 5, "the Twitch OAuth mock to start", interval=0.01)
        except AssertionError:
            raise TimeoutError("the Twitch OAuth mock did not start") from None
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for "hang" responses
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self._socket is not None:
            self._socket.close()


def _reason(status: int) -> str:
    return {
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, "Error")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status)


def oauth_mock_fixture(**options: Any) -> Any:
    """A pytest fixture named ``twitch``: a started ``TwitchOAuthMock(**options)``, stopped
    after the test. A module binds it once: ``twitch = oauth_mock_fixture(token_prefix=...)``."""

    @pytest.fixture(name="twitch")
    async def twitch_oauth_mock() -> AsyncIterator[TwitchOAuthMock]:
        mock = TwitchOAuthMock(**options)
        await mock.start()
        try:
            yield mock
        finally:
            await mock.stop()

    return twitch_oauth_mock
