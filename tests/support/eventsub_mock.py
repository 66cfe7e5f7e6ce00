"""A stand-in for Twitch's EventSub WebSocket server, Helix and OAuth, on 127.0.0.1.

One aiohttp app on a free port, speaking Twitch's documented shapes:

* ``GET /ws`` (WebSocket): ``session_welcome`` first (held back while ``hold_welcome`` is
  set, to open the session_reconnect gap), then ``session_keepalive`` every
  ``keepalive_timeout_seconds`` unless the session is silenced; ``notification``,
  ``session_reconnect`` and ``revocation`` when a test sends them. A connection to the
  ``reconnect_url`` (``?reconnect=<old session>``) inherits the old session's subscriptions.
* ``GET /helix/users?login=...``: ``{"data": [user...]}``.
* ``POST /helix/eventsub/subscriptions``: ``202 {"data": [subscription], "total", "total_cost",
  "max_total_cost"}``; ``400`` for an unknown session, ``401 {"error": "Unauthorized",
  "status": 401, "message": "Invalid OAuth token"}`` for a bad token, ``409`` for a duplicate.
* ``GET /oauth2/validate`` and ``POST /oauth2/token``: backed by a ``TwitchOAuthMock``'s token
  tables (issue, revoke); ``grant_type=client_credentials`` with the right client id and
  secret issues an app token.
* Conduits (app token only): ``GET/POST/PATCH /helix/eventsub/conduits`` (``{"data": [{"id",
  "shard_count"}]}``), ``PATCH /helix/eventsub/conduits/shards`` (202 ``{"data": [shard...],
  "errors": [{"id", "message", "code"}]}``) and ``GET`` of the same; subscriptions with
  ``"transport": {"method": "conduit", "conduit_id"}``. A conduit notification goes to the
  session its shard points at (shards chosen by broadcaster id); a reconnect_url connection
  takes over the old session's shards, as it takes over its subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from tests.support.twitch_oauth_mock import TwitchOAuthMock


def twitch_time(epoch: float | None = None) -> str:
    """RFC 3339 with nanoseconds, as EventSub writes its timestamps."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


@dataclass
class Session:
    id: str
    ws: web.WebSocketResponse
    keepalive_s: int
    welcomed: asyncio.Event = field(default_factory=asyncio.Event)
    silent: bool = False
    closed: bool = False
    reconnected_from: str = ""


@dataclass
class Subscription:
    id: str
    type: str
    version: str
    condition: dict[str, str]
    session_id: str
    created_at: str
    conduit_id: str = ""

    def body(self) -> dict[str, Any]:
        transport: dict[str, str] = {
            "method": "websocket",
            "session_id": self.session_id,
            "connected_at": self.created_at,
        }
        if self.conduit_id:
            transport = {"method": "conduit", "conduit_id": self.conduit_id}
        return {
            "id": self.id,
            "status": "enabled",
            "type": self.type,
            "version": self.version,
            "condition": self.condition,
            "created_at": self.created_at,
            "transport": transport,
            "cost": 0,
        }


@dataclass
class MockConduit:
    id: str
    shard_count: int
    shards: dict[str, str] = field(default_factory=dict)  # shard id -> session id

    def body(self) -> dict[str, Any]:
        return {"id": self.id, "shard_count": self.shard_count}


@dataclass
class EventSubMock:
    oauth: TwitchOAuthMock
    client_id: str = "mock-client-id"
    users: dict[str, str] = field(default_factory=dict)  # login -> id
    hold_welcome: asyncio.Event | None = None  # when set: welcomes wait for it
    sessions: list[Session] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    subscribe_calls: list[dict[str, Any]] = field(default_factory=list)
    app_tokens: set[str] = field(default_factory=set)
    conduits: dict[str, MockConduit] = field(default_factory=dict)
    shard_updates: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None
    _socket: socket.socket | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # -- URLs ---------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def helix_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/helix"

    @property
    def oauth_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/oauth2"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/helix/users", self._users)
        app.router.add_post("/helix/eventsub/subscriptions", self._subscribe)
        app.router.add_get("/helix/chat/settings", self._chat_settings)
        app.router.add_get("/helix/eventsub/conduits", self._list_conduits)
        app.router.add_post("/helix/eventsub/conduits", self._create_conduit)
        app.router.add_patch("/helix/eventsub/conduits", self._update_conduit)
        app.router.add_patch("/helix/eventsub/conduits/shards", self._update_shards)
        app.router.add_get("/helix/eventsub/conduits/shards", self._get_shards)
        app.router.add_get("/oauth2/validate", self._validate)
        app.router.add_post("/oauth2/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for session in self.sessions:
            with contextlib.suppress(Exception):
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._socket is not None:
            self._socket.close()

    async def __aenter__(self) -> EventSubMock:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- what tests drive ---------------------------------------------------------------

    def live(self) -> list[Session]:
        return [s for s in self.sessions if not s.closed and s.welcomed.is_set()]

    def subscriptions_of(self, session: Session) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.session_id == session.id]

    def subscription(self, session: Session, kind: str, broadcaster_id: str) -> Subscription:
        for sub in self.subscriptions_of(session):
            if sub.type == kind and sub.condition.get("broadcaster_user_id") == broadcaster_id:
                return sub
        raise KeyError(f"no {kind} subscription for {broadcaster_id} on {session.id}")

    async def notify(
        self,
        session: Session,
        kind: str,
        broadcaster_id: str,
        event: dict[str, Any],
        *,
        message_id: str | None = None,
    ) -> str:
        """Send one notification for the session's subscription; returns its message id."""
        sub = self.subscription(session, kind, broadcaster_id)
        return await self.deliver(session, sub, event, message_id=message_id)

    def conduit_subscription(self, kind: str, broadcaster_id: str) -> Subscription:
        for sub in self.subscriptions.values():
            if (
                sub.conduit_id
                and sub.type == kind
                and sub.condition.get("broadcaster_user_id") == broadcaster_id
            ):
                return sub
        raise KeyError(f"no conduit {kind} subscription for {broadcaster_id}")

    def shard_of(self, conduit: MockConduit, broadcaster_id: str) -> str:
        """The shard Twitch would pick for a broadcaster (any stable choice will do)."""
        return str(int(broadcaster_id) % conduit.shard_count)

    def shard_session(self, conduit: MockConduit, shard: str) -> Session:
        session_id = conduit.shards.get(shard, "")
        return next(s for s in self.sessions if s.id == session_id)

    async def notify_conduit(
        self,
        kind: str,
        broadcaster_id: str,
        event: dict[str, Any],
        *,
        session: Session | None = None,
        message_id: str | None = None,
    ) -> str:
        """A conduit notification on the broadcaster's shard (or on ``session``)."""
        sub = self.conduit_subscription(kind, broadcaster_id)
        conduit = self.conduits[sub.conduit_id]
        target = session or self.shard_session(conduit, self.shard_of(conduit, broadcaster_id))
        return await self.deliver(target, sub, event, message_id=message_id)

    async def deliver(
        self,
        session: Session,
        sub: Subscription,
        event: dict[str, Any],
        *,
        message_id: str | None = None,
    ) -> str:
        message_id = message_id or str(uuid.uuid4())
        kind = sub.type
        await self.send(
            session,
            {
                "metadata": {
                    "message_id": message_id,
                    "message_type": "notification",
                    "message_timestamp": twitch_time(),
                    "subscription_type": kind,
                    "subscription_version": sub.version,
                },
                "payload": {"subscription": sub.body(), "event": event},
            },
        )
        return message_id

    async def reconnect(self, session: Session) -> None:
        await self.send(
            session,
            {
                "metadata": {
                    "message_id": str(uuid.uuid4()),
                    "message_type": "session_reconnect",
                    "message_timestamp": twitch_time(),
                },
                "payload": {
                    "session": {
                        "id": session.id,
                        "status": "reconnecting",
                        "keepalive_timeout_seconds": None,
                        "reconnect_url": f"{self.ws_url}?reconnect={session.id}",
                        "connected_at": twitch_time(),
                        "recovery_url": None,
                    }
                },
            },
        )

    async def revoke(self, session: Session, sub: Subscription, status: str) -> None:
        self.subscriptions.pop(sub.id, None)
        body = sub.body() | {"status": status}
        await self.send(
            session,
            {
                "metadata": {
                    "message_id": str(uuid.uuid4()),
                    "message_type": "revocation",
                    "message_timestamp": twitch_time(),
                    "subscription_type": sub.type,
                    "subscription_version": sub.version,
                },
                "payload": {"subscription": body},
            },
        )

    async def send(self, session: Session, message: dict[str, Any]) -> None:
        await session.ws.send_str(json.dumps(message))

    async def close_session(self, session: Session) -> None:
        session.closed = True
        await session.ws.close()

    # -- WebSocket ------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        keepalive = int(request.query.get("keepalive_timeout_seconds", "10"))
        session = Session(id=f"session-{next(self._ids)}", ws=ws, keepalive_s=keepalive)
        self.sessions.append(session)
        old_id = request.query.get("reconnect", "")
        if old_id:
            session.reconnected_from = old_id
            old = next(s for s in self.sessions if s.id == old_id)
            session.keepalive_s = old.keepalive_s
        if self.hold_welcome is not None:
            await self.hold_welcome.wait()
        if old_id:  # Twitch moves the subscriptions to the new session
            for sub in self.subscriptions.values():
                if sub.session_id == old_id:
                    sub.session_id = session.id
            for conduit in self.conduits.values():
                for shard, shard_session in conduit.shards.items():
                    if shard_session == old_id:
                        conduit.shards[shard] = session.id
        await self.send(
            session,
            {
                "metadata": {
                    "message_id": str(uuid.uuid4()),
                    "message_type": "session_welcome",
                    "message_timestamp": twitch_time(),
                },
                "payload": {
                    "session": {
                        "id": session.id,
                        "status": "connected",
                        "connected_at": twitch_time(),
                        "keepalive_timeout_seconds": session.keepalive_s,
                        "reconnect_url": None,
                        "recovery_url": None,
                    }
                },
            },
        )
        session.welcomed.set()
        keepalive_task = asyncio.create_task(self._keepalive(session))
        self._tasks.add(keepalive_task)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:  # Twitch forbids client messages: 4001
                    await ws.close(code=4001, message=b"client sent inbound traffic")
        finally:
            session.closed = True
            keepalive_task.cancel()
            self._tasks.discard(keepalive_task)
            for sub_id in [s.id for s in self.subscriptions_of(session)]:
                del self.subscriptions[sub_id]  # websocket_disconnected
        return ws

    async def _keepalive(self, session: Session) -> None:
        while not session.closed:
            await asyncio.sleep(session.keepalive_s * 0.5)
            if session.silent or session.closed:
                continue
            with contextlib.suppress(Exception):
                await self.send(
                    session,
                    {
                        "metadata": {
                            "message_id": str(uuid.uuid4()),
                            "message_type": "session_keepalive",
                            "message_timestamp": twitch_time(),
                        },
                        "payload": {},
                    },
                )

    # -- Helix ----------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return (
            scheme.lower() == "bearer"
            and self.oauth.access_valid(token)
            and request.headers.get("Client-Id") == self.client_id
        )

    def _app_authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return (
            scheme.lower() == "bearer"
            and token in self.app_tokens
            and request.headers.get("Client-Id") == self.client_id
        )

    async def _list_conduits(self, request: web.Request) -> web.Response:
        if not self._app_authorized(request):
            return _unauthorized()
        return web.json_response({"data": [c.body() for c in self.conduits.values()]})

    async def _create_conduit(self, request: web.Request) -> web.Response:
        if not self._app_authorized(request):
            return _unauthorized()
        body = await request.json()
        if len(self.conduits) >= 5:
            return _error(429, "Too Many Requests", "conduit limit reached")
        conduit = MockConduit(id=str(uuid.uuid4()), shard_count=int(body["shard_count"]))
        self.conduits[conduit.id] = conduit
        return web.json_response({"data": [conduit.body()]})

    async def _update_conduit(self, request: web.Request) -> web.Response:
        if not self._app_authorized(request):
            return _unauthorized()
        body = await request.json()
        conduit = self.conduits.get(str(body.get("id", "")))
        if conduit is None:
            return _error(404, "Not Found", "conduit not found")
        conduit.shard_count = int(body["shard_count"])
        for shard in [s for s in conduit.shards if int(s) >= conduit.shard_count]:
            del conduit.shards[shard]
        return web.json_response({"data": [conduit.body()]})

    async def _update_shards(self, request: web.Request) -> web.Response:
        if not self._app_authorized(request):
            return _unauthorized()
        body = await request.json()
        self.shard_updates.append(body)
        conduit = self.conduits.get(str(body.get("conduit_id", "")))
        if conduit is None:
            return _error(404, "Not Found", "conduit not found")
        data, errors = [], []
        for shard in body.get("shards") or []:
            shard_id, transport = str(shard.get("id")), shard.get("transport") or {}
            session_id = str(transport.get("session_id", ""))
            live = any(s.id == session_id and not s.closed for s in self.sessions)
            if int(shard_id) >= conduit.shard_count:
                errors.append({"id": shard_id, "message": "shard not found", "code": ""})
            elif transport.get("method") != "websocket" or not live:
                errors.append(
                    {"id": shard_id, "message": "The websocket session is not found", "code": ""}
                )
            else:
                conduit.shards[shard_id] = session_id
                data.append(self._shard_body(shard_id, session_id))
        return web.json_response({"data": data, "errors": errors}, status=202)

    async def _get_shards(self, request: web.Request) -> web.Response:
        if not self._app_authorized(request):
            return _unauthorized()
        conduit = self.conduits.get(request.query.get("conduit_id", ""))
        if conduit is None:
            return _error(404, "Not Found", "conduit not found")
        data = [self._shard_body(k, v) for k, v in sorted(conduit.shards.items())]
        return web.json_response({"data": data, "pagination": {}})

    def _shard_body(self, shard_id: str, session_id: str) -> dict[str, Any]:
        live = any(s.id == session_id and not s.closed for s in self.sessions)
        return {
            "id": shard_id,
            "status": "enabled" if live else "websocket_disconnected",
            "transport": {
                "method": "websocket",
                "session_id": session_id,
                "connected_at": twitch_time(),
            },
        }

    async def _users(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthorized()
        data = []
        for login in request.query.getall("login", []):
            user_id = self.users.get(login.lower())
            if user_id is not None:
                data.append(
                    {
                        "id": user_id,
                        "login": login.lower(),
                        "display_name": login.title(),
                        "type": "",
                        "broadcaster_type": "",
                        "description": "",
                        "profile_image_url": "",
                        "offline_image_url": "",
                        "view_count": 0,
                        "created_at": "2016-12-14T20:32:28Z",
                    }
                )
        return web.json_response({"data": data})

    async def _chat_settings(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _unauthorized()
        broadcaster_id = request.query.get("broadcaster_id", "")
        settings = {
            "broadcaster_id": broadcaster_id,
            "emote_mode": False,
            "follower_mode": True,
            "follower_mode_duration": 10,
            "moderator_id": None,
            "non_moderator_chat_delay": None,
            "non_moderator_chat_delay_duration": None,
            "slow_mode": False,
            "slow_mode_wait_time": None,
            "subscriber_mode": False,
            "unique_chat_mode": False,
        }
        return web.json_response({"data": [settings]})

    async def _subscribe(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("transport", {}).get("method") == "conduit":
            return await self._subscribe_conduit(request, body)
        if not self._authorized(request):
            return _unauthorized()
        self.subscribe_calls.append(body)
        session_id = body.get("transport", {}).get("session_id", "")
        session = next((s for s in self.sessions if s.id == session_id and not s.closed), None)
        if session is None or body.get("transport", {}).get("method") != "websocket":
            return web.json_response(
                {"error": "Bad Request", "status": 400, "message": "session does not exist"},
                status=400,
            )
        for sub in self.subscriptions_of(session):
            if sub.type == body["type"] and sub.condition == body["condition"]:
                return web.json_response(
                    {"error": "Conflict", "status": 409, "message": "subscription already exists"},
                    status=409,
                )
        sub = Subscription(
            id=str(uuid.uuid4()),
            type=body["type"],
            version=body["version"],
            condition=body["condition"],
            session_id=session_id,
            created_at=twitch_time(),
        )
        self.subscriptions[sub.id] = sub
        return web.json_response(
            {
                "data": [sub.body()],
                "total": len(self.subscriptions),
                "total_cost": 0,
                "max_total_cost": 10,
            },
            status=202,
        )

    async def _subscribe_conduit(self, request: web.Request, body: dict[str, Any]) -> web.Response:
        """Chat types over a conduit: an app token, and the bot user must have granted
        ``user:bot`` (the broadcaster's ``channel:bot`` is not modelled)."""
        if not self._app_authorized(request):
            return _unauthorized()
        self.subscribe_calls.append(body)
        conduit_id = str(body["transport"].get("conduit_id", ""))
        if conduit_id not in self.conduits:
            return _error(400, "Bad Request", "conduit does not exist")
        bot = str(body.get("condition", {}).get("user_id", ""))
        if not any(g.user_id == bot and "user:bot" in g.scopes for g in self.oauth.access.values()):
            return _error(403, "Forbidden", "subscription missing proper authorization")
        for sub in self.subscriptions.values():
            if (
                sub.conduit_id == conduit_id
                and sub.type == body["type"]
                and sub.condition == body["condition"]
            ):
                return _error(409, "Conflict", "subscription already exists")
        sub = Subscription(
            id=str(uuid.uuid4()),
            type=body["type"],
            version=body["version"],
            condition=body["condition"],
            session_id="",
            created_at=twitch_time(),
            conduit_id=conduit_id,
        )
        self.subscriptions[sub.id] = sub
        return web.json_response(
            {
                "data": [sub.body()],
                "total": len(self.subscriptions),
                "total_cost": 0,
                "max_total_cost": 10000,
            },
            status=202,
        )

    # -- OAuth ----------------------------------------------------------------------------

    async def _validate(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        grant = self.oauth.access.get(token) if scheme.lower() in ("oauth", "bearer") else None
        if grant is None or grant.expires_at <= time.time():
            return web.json_response({"status": 401, "message": "invalid access token"}, status=401)
        return web.json_response(
            {
                "client_id": self.client_id,
                "login": grant.login,
                "scopes": list(grant.scopes),
                "user_id": grant.user_id,
                "expires_in": max(0, int(grant.expires_at - time.time())),
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(request.query) | dict(await request.post())
        if form.get("grant_type") == "client_credentials":
            return self._app_token(form)
        if not self.oauth.refresh_valid(str(form.get("refresh_token", ""))):
            return web.json_response(
                {"status": 400, "message": "Invalid refresh token"}, status=400
            )
        return web.json_response({"status": 400, "message": "refresh not offered here"}, status=400)

    def _app_token(self, form: dict[str, Any]) -> web.Response:
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.oauth.client_secret
        ):
            return web.json_response(
                {"status": 403, "message": "invalid client secret"}, status=403
            )
        token = f"app_{uuid.uuid4().hex}"
        self.app_tokens.add(token)
        return web.json_response(
            {"access_token": token, "expires_in": 5_000_000, "token_type": "bearer"}
        )


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "status": status, "message": message}, status=status)


def _unauthorized() -> web.Response:
    return web.json_response(
        {"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}, status=401
    )
