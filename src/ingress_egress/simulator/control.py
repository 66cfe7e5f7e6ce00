"""The simulator's control endpoint: JSON over HTTP on its own port, off unless asked for.

For tests that run the simulator as a subprocess and for benchmarks: change a channel's
settings for the bot, add bots, and read the referee's record. Routes:

* ``GET /bots``; ``POST /bots`` ``{"login", "user_id", "token", "verified"?}`` (tokens are
  never shown back).
* ``GET /channels``; ``GET /channels/{login}``; ``PUT``/``POST /channels/{login}`` with any
  of ``role``, ``slow``, ``followers_only``, ``subs_only``, ``emote_only``, ``banned``,
  ``suspended`` -> the channel's settings after the change (400 naming a bad field).
* ``GET /record`` -> ``{"sends", "breaches", "commands", "injections", "lockouts"}``;
  ``DELETE /record`` forgets records and windows; ``POST /lockout/clear`` ``{"login"?}``.
* ``POST /helix/fail`` ``{"status": 500, "count": 1}``; ``POST /helix/exhaust``
  ``{"login"}`` empties that bot's Helix point bucket (404 when the Helix mock is off).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingress_egress.simulator.rules import BotAccount, ChannelSettings, ChatRules
from ingress_egress.twitch.logins import channel_login

if TYPE_CHECKING:
    from ingress_egress.simulator.helix import HelixMock


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status)


async def _body(request: Request) -> dict[str, Any] | None:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def control_app(
    rules: ChatRules,
    set_channel: Callable[..., ChannelSettings],
    helix: Callable[[], HelixMock | None],
) -> Starlette:
    """The control endpoint over ``rules``; channel changes go through ``set_channel`` (the
    simulator's, which announces them); ``helix()`` is the Helix mock when it runs."""

    async def bots(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse([a.public() for a in rules.accounts.values()])
        body = await _body(request)
        try:
            if body is None:
                raise ValueError("the body must be a JSON object")
            account = BotAccount(
                login=str(body["login"]).lower(),
                user_id=str(body["user_id"]),
                token=str(body["token"]),
                verified=bool(body.get("verified", False)),
            )
        except (KeyError, ValueError) as exc:
            return _error(400, f"a bot needs login, user_id and token: {exc}")
        rules.add_account(account)
        return JSONResponse(account.public(), 201)

    async def channels(request: Request) -> Response:
        return JSONResponse({name: s.as_dict() for name, s in sorted(rules.channels.items())})

    async def channel(request: Request) -> Response:
        login = channel_login(request.path_params["login"])
        if login is None:
            return _error(400, "not a channel login")
        if request.method == "GET":
            return JSONResponse(rules.settings(login).as_dict())
        body = await _body(request)
        if body is None:
            return _error(400, "the body must be a JSON object")
        try:
            settings = set_channel(login, **body)
        except ValueError as exc:
            return _error(400, str(exc))
        return JSONResponse(settings.as_dict())

    async def record(request: Request) -> Response:
        if request.method == "DELETE":
            rules.reset_records()
            return Response(status_code=204)
        snapshot = rules.snapshot()
        now = rules.clock()
        snapshot["lockouts"] = {
            login: round(rules.locked_until(login) - now, 3)
            for login in rules.accounts
            if rules.locked_until(login) > now
        }
        return JSONResponse(snapshot)

    async def clear_lockout(request: Request) -> Response:
        body = await _body(request) or {}
        login = body.get("login")
        rules.clear_lockout(str(login).lower() if login else None)
        return Response(status_code=204)

    async def helix_fail(request: Request) -> Response:
        mock = helix()
        if mock is None:
            return _error(404, "the Helix mock is not running")
        body = await _body(request) or {}
        status, count = body.get("status", 500), body.get("count", 1)
        if not isinstance(status, int) or not isinstance(count, int) or count < 1:
            return _error(400, "status and count must be integers (count >= 1)")
        mock.fail_next(status, count)
        return Response(status_code=204)

    async def helix_exhaust(request: Request) -> Response:
        mock = helix()
        if mock is None:
            return _error(404, "the Helix mock is not running")
        body = await _body(request) or {}
        account = rules.accounts.get(str(body.get("login", "")).lower())
        if account is None:
            return _error(400, "no such bot login")
        mock.exhaust(account.token)
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/bots", bots, methods=["GET", "POST"]),
            Route("/channels", channels, methods=["GET"]),
            Route("/channels/{login}", channel, methods=["GET", "PUT", "POST"]),
            Route("/record", record, methods=["GET", "DELETE"]),
            Route("/lockout/clear", clear_lockout, methods=["POST"]),
            Route("/helix/fail", helix_fail, methods=["POST"]),
            Route("/helix/exhaust", helix_exhaust, methods=["POST"]),
        ]
    )
