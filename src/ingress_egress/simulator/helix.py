"""A Helix (Twitch API) mock for senders, in the simulator's process and on its own port.

Routes (Twitch's shapes; ``TWITCH_HELIX_URL`` = ``<base>/helix``, ``TWITCH_OAUTH_URL`` =
``<base>/oauth2``):

* ``POST /helix/chat/messages``: Send Chat Message, judged by the same ``ChatRules`` as an
  IRC PRIVMSG; a taken message is relayed to the IRC connections joined to the channel.
* ``GET /helix/users?login=&id=``: Get Users.
* ``GET /helix/moderation/channels?user_id=``: Get Moderated Channels (the token's user).
* ``GET /helix/channels/vips?broadcaster_id=&user_id=``: the bot's VIP status in a channel.
* ``GET /helix/chat/settings?broadcaster_id=``: Get Chat Settings.
* ``GET /oauth2/validate``: the token's login, user id, scopes and client id.

Every Helix answer carries the point bucket's ``Ratelimit-*`` headers; an empty bucket is a
429. ``fail_next`` queues failures (a 500 with an empty body, as Twitch sometimes answers).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingress_egress.simulator.bot_chat import BotChat
from ingress_egress.simulator.rules import MAX_CODE_POINTS, BotAccount, ChatRules
from ingress_egress.simulator.traffic import room_id_for

_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 422: "Unprocessable Entity"}
_REASONS |= {429: "Too Many Requests", 500: "Internal Server Error"}
SEND_SCOPE = "user:write:chat"


def helix_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": _REASONS.get(status, "Error"), "status": status, "message": message}
    return JSONResponse(body, status, headers=headers)


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


@dataclass
class PointBucket:
    """Helix's token bucket: ``limit`` points, refilled at ``limit`` per minute."""

    limit: int
    clock: Callable[[], float] = time.time
    points: float = -1.0
    at: float = 0.0
    held_empty: bool = False  # a test keeps it empty until it says otherwise

    def take(self) -> bool:
        now = self.clock()
        if self.held_empty:
            self.points, self.at = 0.0, now
            return False
        if self.points < 0:
            self.points, self.at = float(self.limit), now
        self.points = min(self.limit, self.points + (now - self.at) * self.limit / 60.0)
        self.at = now
        if self.points < 1:
            return False
        self.points -= 1
        return True

    def headers(self) -> dict[str, str]:
        missing = self.limit - self.points
        reset = int(self.at + missing * 60.0 / self.limit) + (1 if missing > 0 else 0)
        return {
            "Ratelimit-Limit": str(self.limit),
            "Ratelimit-Remaining": str(max(0, int(self.points))),
            "Ratelimit-Reset": str(reset),
        }


@dataclass
class HelixCall:
    method: str
    path: str
    status: int


@dataclass
class HelixMock:
    """The Helix side. ``calls`` records every request's method, path and status."""

    rules: ChatRules
    bots: BotChat
    client_id: str = "simulator-client-id"
    points_per_minute: int = 800
    clock: Callable[[], float] = time.time
    known_channels: Callable[[], Iterable[str]] = tuple  # channels joined or live right now
    calls: list[HelixCall] = field(default_factory=list)
    _buckets: dict[str, PointBucket] = field(default_factory=dict)
    _failures: list[int] = field(default_factory=list)
    _logins: dict[str, str] = field(default_factory=dict)  # user id -> login, as looked up

    def fail_next(self, status: int = 500, count: int = 1) -> None:
        """The next ``count`` Helix requests answer ``status`` (no body for a 5xx)."""
        self._failures.extend([status] * count)

    def exhaust(self, token: str) -> None:
        """Empty the point bucket of ``token`` (the next call is a 429)."""
        bucket = self._bucket(token)
        bucket.take()
        bucket.points = 0.0

    def hold_empty(self, token: str, held: bool = True) -> None:
        """Keep the point bucket of ``token`` empty (every call a 429) until called again
        with ``held=False``; then it refills from empty at the usual rate. Unlike
        ``exhaust``, no call can slip in on a point refilled meanwhile."""
        bucket = self._bucket(token)
        bucket.take()
        bucket.points = 0.0
        bucket.held_empty = held

    def _bucket(self, token: str) -> PointBucket:
        bucket = self._buckets.get(token)
        if bucket is None:
            bucket = self._buckets[token] = PointBucket(self.points_per_minute, self.clock)
        return bucket

    def login_for_id(self, user_id: str, extra: Iterable[str] = ()) -> str | None:
        """The login whose simulator id is ``user_id``, among the logins the simulator has
        seen (accounts, configured or joined channels, Get Users lookups, ``extra``)."""
        if user_id in self._logins:
            return self._logins[user_id]
        for account in self.rules.accounts.values():
            if account.user_id == user_id:
                return account.login
        for login in (*self.rules.channels, *self.known_channels(), *extra):
            if room_id_for(login) == user_id:
                return login
        return None

    # -- request plumbing ------------------------------------------------------------------

    def _account(self, request: Request) -> tuple[BotAccount, str]:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = self.rules.by_token(token) if scheme.lower() == "bearer" and token else None
        if account is None:
            raise _Refused(helix_error(401, "Invalid OAuth token"))
        client_id = request.headers.get("client-id", "")
        if not client_id:
            raise _Refused(helix_error(401, "Client-Id header required"))
        if client_id != self.client_id:
            raise _Refused(helix_error(401, "Client ID and OAuth token do not match"))
        return account, token

    def _route(
        self, handler: Callable[[Request, BotAccount], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            response = await self._answer(request, handler)
            self.calls.append(HelixCall(request.method, request.url.path, response.status_code))
            return response

        return endpoint

    async def _answer(
        self, request: Request, handler: Callable[[Request, BotAccount], Awaitable[Response]]
    ) -> Response:
        if self._failures:
            return Response(status_code=self._failures.pop(0))
        try:
            account, token = self._account(request)
        except _Refused as refused:
            return refused.response
        bucket = self._bucket(token)
        if not bucket.take():
            return helix_error(429, "Too Many Requests", bucket.headers())
        try:
            response = await handler(request, account)
        except _Refused as refused:
            response = refused.response
        response.headers.update(bucket.headers())
        return response

    # -- routes ----------------------------------------------------------------------------

    async def _send_message(self, request: Request, account: BotAccount) -> Response:
        body = await _json_body(request)
        broadcaster_id = _required(body, "broadcaster_id")
        sender_id = _required(body, "sender_id")
        message = body.get("message")
        if not isinstance(message, str) or not message:
            raise _Refused(helix_error(400, 'Missing required parameter "message"'))
        if SEND_SCOPE not in account.scopes:
            raise _Refused(helix_error(401, f"Missing scope: {SEND_SCOPE}"))
        if sender_id != account.user_id:
            raise _Refused(
                helix_error(401, "The sender_id must match the user ID in the access token.")
            )
        reply_to = body.get("reply_parent_message_id") or ""
        if not isinstance(reply_to, str):
            raise _Refused(helix_error(400, "The reply_parent_message_id is not valid."))
        channel = self.login_for_id(broadcaster_id)
        if channel is None:
            raise _Refused(helix_error(400, "The broadcaster_id is not valid."))
        if len(message) > MAX_CODE_POINTS:
            raise _Refused(helix_error(422, "The message is too large."))
        sent = await self.bots.send(account, channel, message, via="helix", reply_to=reply_to)
        decision = sent.decision
        drop = None
        if decision.notice is not None:
            drop = {"code": decision.outcome, "message": decision.notice_text}
        result = {"message_id": sent.id, "is_sent": drop is None, "drop_reason": drop}
        return JSONResponse({"data": [result]})

    async def _users(self, request: Request, account: BotAccount) -> Response:
        logins = request.query_params.getlist("login")
        ids = request.query_params.getlist("id")
        if len(logins) + len(ids) > 100:
            raise _Refused(helix_error(400, "The request may specify at most 100 users."))
        if not logins and not ids:
            logins = [account.login]
        found = {login.lower(): self._user_id(login.lower()) for login in logins}
        for user_id in ids:
            login = self.login_for_id(user_id)
            if login is not None:
                found[login] = user_id
        data = [_user(login, user_id) for login, user_id in found.items()]
        return JSONResponse({"data": data})

    def _user_id(self, login: str) -> str:
        account = self.rules.accounts.get(login)
        user_id = account.user_id if account is not None else room_id_for(login)
        self._logins[user_id] = login
        return user_id

    async def _moderated_channels(self, request: Request, account: BotAccount) -> Response:
        user_id = request.query_params.get("user_id", "")
        if not user_id:
            raise _Refused(helix_error(400, 'Missing required parameter "user_id"'))
        if user_id != account.user_id:
            raise _Refused(helix_error(400, "The user_id must match the user ID in the token."))
        data = [
            {"broadcaster_id": room_id_for(ch), "broadcaster_login": ch, "broadcaster_name": ch}
            for ch, settings in sorted(self.rules.channels.items())
            if settings.role == "moderator"
        ]
        return JSONResponse({"data": data, "pagination": {}})

    async def _vips(self, request: Request, account: BotAccount) -> Response:
        channel = self._channel_param(request)
        wanted = request.query_params.getlist("user_id") or [account.user_id]
        data = []
        if self.rules.settings(channel).role == "vip" and account.user_id in wanted:
            data.append(
                {
                    "user_id": account.user_id,
                    "user_name": account.login,
                    "user_login": account.login,
                }
            )
        return JSONResponse({"data": data, "pagination": {}})

    async def _chat_settings(self, request: Request, account: BotAccount) -> Response:
        channel = self._channel_param(request)
        settings = self.rules.settings(channel)
        follower = settings.followers_only >= 0
        data = {
            "broadcaster_id": room_id_for(channel),
            "slow_mode": settings.slow > 0,
            "slow_mode_wait_time": settings.slow or None,
            "follower_mode": follower,
            "follower_mode_duration": settings.followers_only if follower else None,
            "subscriber_mode": settings.subs_only,
            "emote_mode": settings.emote_only,
            "unique_chat_mode": False,
        }
        return JSONResponse({"data": [data]})

    def _channel_param(self, request: Request) -> str:
        broadcaster_id = request.query_params.get("broadcaster_id", "")
        if not broadcaster_id:
            raise _Refused(helix_error(400, 'Missing required parameter "broadcaster_id"'))
        channel = self.login_for_id(broadcaster_id)
        if channel is None:
            raise _Refused(helix_error(400, "The broadcaster_id is not valid."))
        return channel

    async def _validate(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = self.rules.by_token(token) if scheme.lower() in ("oauth", "bearer") else None
        if account is None:
            return JSONResponse({"status": 401, "message": "invalid access token"}, 401)
        return JSONResponse(
            {
                "client_id": self.client_id,
                "login": account.login,
                "scopes": list(account.scopes),
                "user_id": account.user_id,
                "expires_in": 14_400,
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/helix/chat/messages", self._route(self._send_message), methods=["POST"]),
                Route("/helix/users", self._route(self._users), methods=["GET"]),
                Route(
                    "/helix/moderation/channels",
                    self._route(self._moderated_channels),
                    methods=["GET"],
                ),
                Route("/helix/channels/vips", self._route(self._vips), methods=["GET"]),
                Route("/helix/chat/settings", self._route(self._chat_settings), methods=["GET"]),
                Route("/oauth2/validate", self._validate, methods=["GET"]),
            ]
        )


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _Refused(helix_error(400, "The request body is not valid JSON.")) from None
    if not isinstance(body, dict):
        raise _Refused(helix_error(400, "The request body must be a JSON object."))
    return body


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _Refused(helix_error(400, f'Missing required parameter "{name}"'))
    return value


def _user(login: str, user_id: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "login": login,
        "display_name": login,
        "type": "",
        "broadcaster_type": "",
        "description": "",
        "profile_image_url": "",
        "offline_image_url": "",
        "view_count": 0,
        "created_at": "2016-12-14T20:32:28Z",
    }
