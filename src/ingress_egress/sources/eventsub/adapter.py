"""Every TwitchIO-specific override, in one module (pinned: twitchio 3.3.*).

TwitchIO 3 reads its endpoints from module and class attributes, not arguments, and its
websocket class is chosen by a module-level name; ``PINNED_ATTRIBUTES`` lists each one this
module replaces (tests/test_eventsub_adapter.py checks they exist in the installed version, so
an upgrade that renames one fails loudly instead of silently talking to Twitch).

What is changed, and why:

* Endpoints: ``eventsub.websockets.WSS``, ``http.Route.BASE`` (Helix), ``http.Route.ID_BASE``
  (OAuth), from ``TWITCH_EVENTSUB_WS_URL``, ``TWITCH_HELIX_URL`` and ``TWITCH_OAUTH_URL``.
* Tokens: the credentials provider (Firestore in production) owns them and their refresh.
  ``ChatClient.load_tokens`` installs the provider's access token; ``save_tokens`` writes
  nothing (no ``.tio.tokens.json``). TwitchIO is never given a refresh token or the client
  secret, so it cannot refresh on its own, nor leak them in its error messages.
* ``ChatWebsocket``: a ``session_reconnect`` keeps reading the old socket until the new one is
  welcomed (TwitchIO 3.3.2 stops reading it, and loses what Twitch sends there meanwhile);
  notifications and revocations go to an ``EventHandler`` as Twitch's JSON (the source maps
  them itself, de-duplicating by message id), and a revocation never closes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import twitchio
from twitchio import client as _tio_client
from twitchio import http as _tio_http
from twitchio.authentication import tokens as _tio_tokens
from twitchio.eventsub import websockets as _tio_websockets

log = logging.getLogger("ingress_egress.eventsub")

# (owner, attribute) pairs this module reads or replaces.
PINNED_ATTRIBUTES: tuple[tuple[Any, str], ...] = (
    (_tio_websockets, "WSS"),
    (_tio_websockets, "Websocket"),
    (_tio_client, "Websocket"),
    (_tio_http.Route, "BASE"),
    (_tio_http.Route, "ID_BASE"),
    (_tio_websockets.Websocket, "_process_notification"),
    (_tio_websockets.Websocket, "_process_revocation"),
    (_tio_websockets.Websocket, "_process_reconnect"),
    (_tio_websockets.Websocket, "_process_welcome"),
    (_tio_websockets.Websocket, "_create_connection_task"),
    (_tio_websockets.Websocket, "connect"),
    (_tio_websockets.Websocket, "close"),
    *(
        (_tio_websockets.Websocket, slot)  # slots read or written by ChatWebsocket
        for slot in (
            "_subscriptions",
            "_keep_alive_timeout",
            "_heartbeat",
            "_keep_alive_task",
            "_original_attempts",
            "_closed",
            "_client",
            "_token_for",
            "_shard_id",
            "_http",
            "_session_id",
        )
    ),
    (twitchio.Client, "load_tokens"),
    (twitchio.Client, "save_tokens"),
    (twitchio.Client, "subscribe_websocket"),
    (_tio_tokens.ManagedHTTPClient, "validate_token"),
    (_tio_tokens.ManagedHTTPClient, "_refresh_token"),
    (_tio_tokens.ManagedHTTPClient, "get_channel_chat_settings"),
)
# Instance attributes read or written here: (on the client, on its HTTP client).
PINNED_INSTANCE_ATTRIBUTES = (
    ("_websockets", "_bot_id", "_http"),
    ("_tokens", "_app_token", "_has_loaded"),
)
CONDUIT_SHARD_KEY = "conduit-shard-"  # TwitchIO's socket table key for shard sockets (not a user)
OAUTH_SUFFIX = "/oauth2"  # TwitchIO appends "oauth2/<op>" to ID_BASE itself
RETIRED_SOCKET_GRACE_S = 30.0  # Twitch closes the old socket itself soon after the welcome


def configure_endpoints(*, ws_url: str, helix_url: str, oauth_url: str) -> None:
    """Point TwitchIO at Twitch (or a mock). Process-wide: TwitchIO offers nothing narrower."""
    oauth = oauth_url.rstrip("/")
    if not oauth.endswith(OAUTH_SUFFIX):
        raise ValueError(f"the OAuth URL must end in {OAUTH_SUFFIX}: {oauth_url!r}")
    _tio_websockets.WSS = ws_url
    _tio_http.Route.BASE = helix_url.rstrip("/") + "/"
    _tio_http.Route.ID_BASE = oauth.removesuffix(OAUTH_SUFFIX) + "/"
    # TwitchIO looks its socket class up on this module at connect time: the one override
    # point it has (a subclass, so mypy's "cannot assign to a type" is the intent here).
    _tio_client.Websocket = ChatWebsocket  # type: ignore[misc]


class EventHandler(Protocol):
    """What the source implements to receive Twitch's messages from the sockets."""

    def notification(self, message: dict[str, Any], received_at: float) -> None: ...

    def revocation(self, subscription: dict[str, Any]) -> None: ...

    def welcomed(self, session_id: str) -> None: ...

    def reconnecting(self, why: str) -> None: ...


class AccessToken(Protocol):
    @property
    def access_token(self) -> str: ...

    @property
    def user_id(self) -> str: ...


class ChatClient(twitchio.Client):
    """A TwitchIO client whose tokens come from (and stay with) the credentials provider."""

    def __init__(
        self,
        *,
        client_id: str,
        bot_id: str | None,
        handler: EventHandler,
        load_token: Callable[[], Awaitable[AccessToken]],  # the provider's current token
        keepalive_s: float = 10.0,
    ) -> None:
        super().__init__(
            client_id=client_id, client_secret=None, bot_id=bot_id, fetch_client_user=False
        )
        self.handler = handler
        self.keepalive_s = keepalive_s
        self._load_token = load_token

    async def load_tokens(self, path: str | None = None, /) -> None:
        install_token(self, await self._load_token())

    async def save_tokens(self, path: str | None = None, /) -> None:
        """Nothing to save: the provider persists tokens (TwitchIO would write a JSON file)."""

    async def event_token_refreshed(self, payload: Any) -> None:
        # TwitchIO holds no refresh token, so it cannot refresh; should a future version do so
        # anyway, the provider is still the one that persists tokens: just make it visible.
        log.warning(
            "TwitchIO reported a token refresh for user %s", getattr(payload, "user_id", "?")
        )

    async def event_error(self, payload: Any) -> None:
        log.error("TwitchIO listener error: %s", type(getattr(payload, "error", None)).__name__)

    def adopt_bot_id(self, user_id: str) -> None:
        """The bot's id, learnt from validating its token (the provider may not know it)."""
        self._bot_id = user_id

    def open_shard(self, shard_id: str) -> ChatWebsocket:
        """A socket for one conduit shard. TwitchIO's own shard mode (``shard_id``) closes on
        trouble and leaves reconnecting to AutoClient; this one reconnects like any
        ``ChatWebsocket`` (with the hand-over fix) and the source re-points the shard at the
        new session. Each shard has its own table key: TwitchIO replaces a key's whole group
        when a socket is welcomed again."""
        socket = ChatWebsocket(
            keep_alive_timeout=self.keepalive_s,
            client=self,
            token_for=f"{CONDUIT_SHARD_KEY}{shard_id}",
            http=self._http,
        )
        socket.conduit_shard = shard_id
        return socket

    def shard_sessions(self) -> dict[str, str]:
        """Conduit shard id -> the session id of its live (not retired) socket."""
        return {
            s.conduit_shard: s.session_id
            for s in self.sockets()
            if s.conduit_shard is not None and s.connected and s.session_id and not s._retired
        }

    def has_token(self, user_id: str) -> bool:
        return user_id in self._http._tokens

    def sockets(self) -> list[ChatWebsocket]:
        # TwitchIO annotates ``_websockets`` with its own Websocket class; every socket in it
        # is a ChatWebsocket (configure_endpoints swaps the class TwitchIO instantiates).
        sockets = [s for group in self._websockets.values() for s in group.values()]
        return sockets  # type: ignore[return-value]

    async def validate(self, token: str) -> Any:
        return await self._http.validate_token(token)

    async def chat_settings(self, broadcaster_id: str) -> dict[str, Any] | None:
        """Helix "Get Chat Settings", as Twitch's JSON (the first and only entry)."""
        body = await self._http.get_channel_chat_settings(broadcaster_id, token_for=self.bot_id)
        data = body.get("data") or []
        return data[0] if data else None


def install_token(client: twitchio.Client, auth: AccessToken) -> None:
    """Put the provider's token in TwitchIO's table without TwitchIO's validate/refresh steps
    (the provider validates and refreshes; TwitchIO's add_token would refresh on its own)."""
    user_id = auth.user_id or (client.bot_id or "")
    client._http._tokens[user_id] = {
        "user_id": user_id,
        "token": auth.access_token,
        "refresh": "",
        "last_validated": datetime.datetime.now().isoformat(),
    }
    # login(token=...) made the same token TwitchIO's "app token" (its default for requests
    # naming no user): keep that copy current too rather than stale.
    client._http._app_token = auth.access_token
    client._http._has_loaded = True


class ChatWebsocket(_tio_websockets.Websocket):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._retired = False
        self.conduit_shard: str | None = None  # set for a conduit shard's socket
        self._handover: asyncio.Task[None] | None = None
        client = options.get("client")
        keepalive = getattr(client, "keepalive_s", None)
        if keepalive is not None:
            # Twitch accepts 10..600 s; shorter values are for tests against a mock.
            self._keep_alive_timeout = max(1, int(keepalive))
            self._heartbeat = min(self._keep_alive_timeout, 25) + 5

    @property
    def handler(self) -> EventHandler | None:
        return getattr(self._client, "handler", None)

    async def connect(
        self, *, url: str | None = None, reconnect: bool = False, fail_once: bool = False
    ) -> None:
        if reconnect and self.handler is not None and not self._closed:
            self.handler.reconnecting("connection lost or keepalive timed out")
        await super().connect(url=url, reconnect=reconnect, fail_once=fail_once)

    async def _process_welcome(self, data: Any) -> None:
        await super()._process_welcome(data)
        self._register()
        if self.handler is not None and self._session_id:
            self.handler.welcomed(self._session_id)

    def _register(self) -> None:
        """File this socket under its new session id. (TwitchIO 3.3.2 files a re-welcomed
        socket under its previous id, and then cannot find it to remove it on close.)"""
        if self._client is None or self._token_for is None or not self._session_id:
            return
        group = self._client._websockets[self._token_for]
        for key in [key for key, socket in group.items() if socket is self]:
            del group[key]
        group[self._session_id] = self

    async def _process_notification(self, data: Any) -> None:
        if self.handler is not None:
            self.handler.notification(data, time.time())

    async def _process_revocation(self, data: Any) -> None:
        subscription = data["payload"]["subscription"]
        self._subscriptions.pop(subscription.get("id", ""), None)
        if self.handler is not None:
            self.handler.revocation(subscription)

    async def _process_reconnect(self, data: Any) -> None:
        # Not awaited: this socket's read loop must keep going until the new one is welcomed.
        url = data["payload"]["session"]["reconnect_url"]
        if self.handler is not None:
            self.handler.reconnecting("session_reconnect from Twitch")
        self._handover = asyncio.create_task(self._hand_over(url), name="eventsub-handover")

    async def _hand_over(self, url: str) -> None:
        successor = ChatWebsocket(
            keep_alive_timeout=self._keep_alive_timeout,
            reconnect_attempts=self._original_attempts,
            client=self._client,
            token_for=self._token_for,
            http=self._http,
            shard_id=self._shard_id,
        )
        successor._subscriptions = self._subscriptions  # Twitch carries them over
        successor.conduit_shard = self.conduit_shard  # and the conduit shard
        try:
            await successor.connect(url=url, reconnect=False, fail_once=True)
        except Exception as error:
            log.warning(
                "eventsub: reconnect URL failed (%s); reconnecting afresh", type(error).__name__
            )
            await self.connect(reconnect=True)
            return
        if self._client is not None and self._token_for is not None:
            # TwitchIO keys its sockets by session id (typed as str | None there: a socket
            # before its welcome has none; a successor always has one).
            sockets = self._client._websockets[self._token_for]
            sockets[successor.session_id] = successor  # type: ignore[index]
        self._retire()
        await asyncio.sleep(RETIRED_SOCKET_GRACE_S)
        await self.close()

    def _retire(self) -> None:
        """Stop watching this socket (the successor is live) but keep reading what is left."""
        self._retired = True
        if self._keep_alive_task is not None:
            self._keep_alive_task.cancel()
            self._keep_alive_task = None

    async def _create_connection_task(self) -> None:
        if self._retired:  # Twitch closed the old socket after the hand-over: expected
            asyncio.get_running_loop().create_task(self.close())
            return
        await super()._create_connection_task()

    async def close(self, cleanup: bool = True, *, reassociate: bool = True) -> None:
        handover = self._handover
        if handover is not None and handover is not asyncio.current_task():
            handover.cancel()
            with contextlib.suppress(BaseException):
                await handover
        await super().close(cleanup, reassociate=reassociate)
