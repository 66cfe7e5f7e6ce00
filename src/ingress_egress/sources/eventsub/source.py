"""Twitch chat over EventSub, through TwitchIO 3: one WebSocket up to ``MAX_CHANNELS``
channels, a conduit (app token, one shard socket per 300 subscriptions; conduit.py) beyond.

Resolves the channel logins to broadcaster ids (Helix), subscribes the six chat types per
channel as the bot user, and hands every notification, mapped to the IRC path's typed
message, to the same sink (the pipeline). Reconnects, revocations and token trouble are
reported through ``ChatState``/``Counters``/``ErrorLog`` and ``describe()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twitchio import HTTPException, TwitchioException
from twitchio.eventsub import (
    ChatClearSubscription,
    ChatClearUserMessagesSubscription,
    ChatMessageDeleteSubscription,
    ChatMessageSubscription,
    ChatNotificationSubscription,
    ChatSettingsUpdateSubscription,
)

from ingress_egress.credentials import ChatAuth, CredentialsError, CredentialsProvider
from ingress_egress.retry import Backoff
from ingress_egress.sources.base import SelfMessageHook, chat_readiness
from ingress_egress.sources.eventsub.adapter import (
    ChatClient,
    configure_endpoints,
    install_token,
)
from ingress_egress.sources.eventsub.conduit import Conduit, ConduitApi, ConduitError
from ingress_egress.sources.eventsub.mapping import (
    CHAT_SETTINGS,
    EventMapper,
    UnknownEvent,
    self_message,
    settings_event,
    timestamp_ms,
)
from ingress_egress.sources.recent import RecentKeys
from ingress_egress.status import ChatSnapshot, ChatState, Counters, ErrorLog
from ingress_egress.status.counters import iso_from_monotonic
from ingress_egress.twitch.messages import TwitchMessage

log = logging.getLogger("ingress_egress.eventsub")

Sink = Callable[[TwitchMessage, float], None]
# (channel, Twitch message id) of each message the bot itself sent (egress/echo.py).

REQUIRED_SCOPE = "user:read:chat"
CONDUIT_SCOPE = "user:bot"  # chat subscriptions with an app token (conduits) need it too
SUBSCRIPTIONS = (
    ChatMessageSubscription,
    ChatNotificationSubscription,
    ChatClearSubscription,
    ChatClearUserMessagesSubscription,
    ChatMessageDeleteSubscription,
    ChatSettingsUpdateSubscription,
)
# One WebSocket holds 300 subscriptions and TwitchIO opens one socket per user token.
MAX_WEBSOCKET_SUBSCRIPTIONS = 300
RECENT_MESSAGE_IDS = 8192  # EventSub message ids remembered against at-least-once redelivery
MAX_CHANNELS = MAX_WEBSOCKET_SUBSCRIPTIONS // len(SUBSCRIPTIONS)
# Beyond MAX_CHANNELS: a conduit, one shard socket per 300 subscriptions (Twitch does not cap
# a shard's subscriptions; this keeps each socket's share of the traffic what it is today).
SUBSCRIPTIONS_PER_SHARD = MAX_WEBSOCKET_SUBSCRIPTIONS
SHARD_RETRY_EVERY_S = 5.0
# Revocations Twitch will not undo by subscribing again (the user, the authorization or the
# version is gone); anything else is retried.
FINAL_REVOCATIONS = frozenset(
    {"authorization_revoked", "user_removed", "version_removed", "moderator_removed"}
)
SUPERVISE_EVERY_S = 0.25
RETRY_CHANNELS_EVERY_S = 60.0  # channels whose subscriptions failed (HTTP errors) are retried
TOKEN_SYNC_EVERY_S = 30.0
TOKEN_RETRY_EVERY_S = 5.0
DOWN_REBUILD_AFTER_S = 120.0  # TwitchIO reconnects by itself; rebuild if it never manages to


class EventSubSource:
    name = "twitch-eventsub"
    debug_section = "eventsub"

    def __init__(
        self,
        *,
        channels: tuple[str, ...],
        login: str,
        client_id: str,
        credentials: CredentialsProvider,
        sink: Sink,
        state: ChatState,
        counters: Counters,
        errors: ErrorLog,
        backoff: Backoff,
        ws_url: str,
        helix_url: str,
        oauth_url: str,
        keepalive_s: float = 10.0,
        client_secret: str = "",
        on_bot_user_id: Callable[[str], None] | None = None,
        on_self_message: SelfMessageHook | None = None,
    ) -> None:
        """``on_bot_user_id``: told the bot's user id once the token is validated (the
        builder's ``set_self_user_id``: its chat messages are marked ``isSelf``);
        ``on_self_message``: each of them, as (channel, message id)."""
        self.channels = channels
        state.set_reading(channels)
        self.login = login
        self.client_id = client_id
        self.credentials = credentials
        self.sink = sink
        self.state = state
        self.counters = counters
        self.errors = errors
        self.backoff = backoff
        self.ws_url = ws_url
        self.keepalive_s = keepalive_s
        self._on_bot_user_id = on_bot_user_id
        self._on_self_message = on_self_message
        configure_endpoints(ws_url=ws_url, helix_url=helix_url, oauth_url=oauth_url)
        self.mapper = EventMapper()
        self.recent = RecentKeys(RECENT_MESSAGE_IDS)
        self.duplicates = 0
        self.unhandled = 0
        self.revocations: deque[dict[str, Any]] = deque(maxlen=50)
        self.token_problem = ""  # non-empty: degraded (readiness reason)
        self.tokens_dropped = 0
        self.session_id = ""
        self.bot_id = ""
        self.broadcasters: dict[str, str] = {}  # broadcaster id -> login
        self._client: ChatClient | None = None
        self._token = ""
        self._resubscribe: deque[dict[str, Any]] = deque()
        self._retry_channels: dict[str, str] = {}  # broadcaster id -> login
        self._down_since: float | None = None
        self._next_token_sync = 0.0
        self._token_missing = False
        self._token_retry_at = 0.0
        self._next_channel_retry = 0.0
        self._stopping = asyncio.Event()
        self._last_read: float | None = None
        # More channels than one socket holds: a conduit (app token from the client secret).
        self.transport = "conduit" if len(channels) > MAX_CHANNELS else "websocket"
        self._conduit_api = (
            ConduitApi(
                helix_url=helix_url,
                oauth_url=oauth_url,
                client_id=client_id,
                client_secret=client_secret,
            )
            if self.transport == "conduit"
            else None
        )
        self.conduit: Conduit | None = None
        self._shard_sessions: dict[str, str] = {}  # shard id -> session Twitch has for it
        self._next_shard_sync = 0.0
        self._conduit_subscribed: set[tuple[str, str]] = set()  # (type, broadcaster id)

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await self._session()
            except CredentialsError as error:
                self._token_trouble(f"credentials unavailable ({error.code})")
                self.errors.add(error.code, str(error))
            except HTTPException as error:
                self.errors.add("eventsub_http", _http_reason(error))
            except ConduitError as error:
                log.warning("eventsub: conduit setup failed (%s)", error)
                self.errors.add("eventsub_conduit", str(error))
            except (TwitchioException, OSError, TimeoutError) as error:
                log.warning("eventsub: Twitch unreachable (%s)", type(error).__name__)
                self.errors.add("eventsub_unreachable", type(error).__name__)
            except Exception as error:
                log.exception("eventsub session failed")
                self.errors.add("eventsub_failed", f"{type(error).__name__}")
            finally:
                await self._close_client()
            if self._stopping.is_set():
                break
            self.backoff.connection_ended(time.monotonic() - started)
            delay = self.backoff.next_delay()
            log.warning("eventsub: session ended; starting again in %.2fs", delay)
            self.state.mark_reconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def stop(self) -> None:
        self._stopping.set()
        await self._close_client()
        if self._conduit_api is not None:
            await self._conduit_api.close()

    @property
    def last_read_at(self) -> float | None:
        """Monotonic time of the last message from Twitch (None while disconnected)."""
        return self._last_read if self.state.connected else None

    def connections(self) -> list[dict[str, Any]]:
        """``/_debug/twitch`` connection entries: one EventSub WebSocket session."""
        state, now = self.state, time.monotonic()
        since, last_read = state.connected_since, self.last_read_at
        return [
            {
                "endpoint": state.server or self.ws_url,
                "connected": state.connected,
                "connectedSince": iso_from_monotonic(since) if since is not None else None,
                "connectedForSeconds": round(now - since, 1) if since is not None else None,
                "nick": state.identity,
                "joinedChannels": len(state.joined),
                "lastMessageAgeSeconds": (
                    round(now - last_read, 3) if last_read is not None else None
                ),
            }
        ]

    # -- one session: token, ids, subscriptions, then supervise -------------------------

    async def _session(self) -> None:
        auth = await self.credentials.get_chat_auth(self.login)
        client = ChatClient(
            client_id=self.client_id,
            bot_id=auth.user_id or None,
            handler=self,
            load_token=self._current_token,
            keepalive_s=self.keepalive_s,
        )
        self._client = client
        await self._check_token(client, auth)
        client.adopt_bot_id(self.bot_id)
        await client.login(token=auth.access_token, load_tokens=True, save_tokens=True)
        self._token = auth.access_token
        self.state.set_logged_in(True)
        await self._resolve_channels(client)
        if self._conduit_api is not None:
            await self._open_conduit(client, self._conduit_api)
        for broadcaster_id, login in list(self.broadcasters.items()):
            await self._subscribe_channel(client, broadcaster_id, login)
        self.backoff.reset()
        await self._supervise(client)

    async def _current_token(self) -> ChatAuth:
        auth = await self.credentials.get_chat_auth(self.login)
        if not auth.user_id:
            return ChatAuth(access_token=auth.access_token, user_id=self.bot_id, login=auth.login)
        return auth

    async def _check_token(self, client: ChatClient, auth: ChatAuth) -> None:
        try:
            info = await client.validate(auth.access_token)
        except HTTPException as error:
            self._token_trouble(f"token rejected by Twitch ({error.status})")
            raise
        self.bot_id = auth.user_id or str(info.user_id or "")
        if self._on_bot_user_id is not None:
            self._tell_bot_user_id(self.bot_id)
        scopes = {str(scope) for scope in (info.scopes or [])}
        conduit = self.transport == "conduit"
        for scope in (REQUIRED_SCOPE, CONDUIT_SCOPE) if conduit else (REQUIRED_SCOPE,):
            if scope not in scopes:
                self._token_trouble(f"token lacks scope {scope}")
                raise CredentialsError("missing_scope", f"the bot token lacks {scope}")
        self.token_problem = ""

    def _tell_bot_user_id(self, user_id: str) -> None:
        assert self._on_bot_user_id is not None
        try:
            self._on_bot_user_id(user_id)
        except Exception as error:  # e.g. not a Twitch user id: reading goes on unmarked
            self.errors.add("handler_error", f"the bot's user id was refused: {error}"[:200])
            log.error("eventsub: the bot's user id was refused (%s)", error)

    async def _resolve_channels(self, client: ChatClient) -> None:
        users = await self._with_fresh_token(
            client, lambda: client.fetch_users(logins=list(self.channels), token_for=self.bot_id)
        )
        self.state.clear_failed()  # a new session tries every channel again
        self._retry_channels.clear()
        self.broadcasters = {str(user.id): user.name.lower() for user in users if user.name}
        found = set(self.broadcasters.values())
        for channel in self.channels:
            if channel not in found:
                self.state.mark_failed(channel, "no such Twitch user (Helix users)")
                self.errors.add("eventsub_unknown_channel", f"{channel}: not found")

    async def _subscribe_channel(self, client: ChatClient, broadcaster_id: str, login: str) -> None:
        failures = []
        for kind in SUBSCRIPTIONS:
            try:
                await self._create_subscription(client, kind, broadcaster_id)
            except HTTPException as error:
                failures.append(f"{kind.type}: {_http_reason(error)}")
            except ConduitError as error:
                failures.append(f"{kind.type}: {error}")
        if failures:
            self._retry_channels[broadcaster_id] = login
            self.state.mark_failed(login, "; ".join(failures)[:300])
            self.errors.add("eventsub_subscribe_failed", f"{login}: {failures[0]}")
        else:
            self._retry_channels.pop(broadcaster_id, None)
            self.state.set_joined(login, True)
            await self._publish_settings(client, broadcaster_id, login)

    async def _create_subscription(self, client: ChatClient, kind: Any, broadcaster: str) -> None:
        """One subscription as the bot user: on the conduit (app token) or on the socket."""
        payload = kind(broadcaster_user_id=broadcaster, user_id=self.bot_id)
        if self.conduit is not None and self._conduit_api is not None:
            condition = {str(k): str(v) for k, v in payload.condition.items()}
            await self._conduit_api.subscribe(
                self.conduit.id, str(kind.type), str(payload.version), condition
            )
            self._conduit_subscribed.add((str(kind.type), broadcaster))
            return
        await self._with_fresh_token(
            client, lambda: client.subscribe_websocket(payload=payload, as_bot=True)
        )

    async def _open_conduit(self, client: ChatClient, api: ConduitApi) -> None:
        """Find or create the conduit, open one socket per shard, point the shards at them."""
        wanted = len(self.broadcasters) * len(SUBSCRIPTIONS)
        shard_count = max(1, math.ceil(wanted / SUBSCRIPTIONS_PER_SHARD))
        self.conduit = await api.ensure_conduit(shard_count)
        self._shard_sessions.clear()
        for shard in range(self.conduit.shard_count):
            await client.open_shard(str(shard)).connect()
        if not await self._sync_shards(client):
            raise ConduitError("conduit shards", 0, "Twitch refused to assign every shard")
        log.info("eventsub: conduit %s with %d shards", self.conduit.id, shard_count)

    async def _sync_shards(self, client: ChatClient) -> bool:
        """Point every shard whose socket has a new session (a fresh reconnect, or a hand-over
        Twitch already followed) at it. True when every live shard is assigned."""
        if self.conduit is None or self._conduit_api is None:
            return True
        live = client.shard_sessions()
        stale = {k: v for k, v in live.items() if self._shard_sessions.get(k) != v}
        if not stale:
            return True
        try:
            refused = await self._conduit_api.assign_shards(self.conduit.id, stale)
        except ConduitError as error:
            refused = {shard: str(error) for shard in stale}
        for shard, session in stale.items():
            if shard in refused:
                self.errors.add("eventsub_shard", f"shard {shard}: {refused[shard]}"[:200])
            else:
                self._shard_sessions[shard] = session
        return not refused

    async def _publish_settings(self, client: ChatClient, broadcaster_id: str, login: str) -> None:
        """The channel's current settings, as IRC's ROOMSTATE on JOIN (EventSub only sends
        changes). Not fatal: chat flows without it."""
        try:
            helix = await client.chat_settings(broadcaster_id)
        except HTTPException as error:
            self.errors.add("eventsub_chat_settings", f"{login}: {_http_reason(error)}")
            return
        if helix is None:
            return
        now = time.time()
        event = settings_event(helix, login)
        self.sink(self.mapper.to_message(CHAT_SETTINGS, event, int(now * 1000)), now)

    async def _with_fresh_token(self, client: ChatClient, call: Callable[[], Any]) -> Any:
        """One retry after a 401: the provider refreshes (TwitchIO cannot: it has no refresh
        token), the new token is installed, and the call is made again."""
        try:
            return await call()
        except HTTPException as error:
            if error.status not in (400, 401):  # TwitchIO's own refresh attempt ends in 400
                raise
        auth = await self.credentials.force_refresh(self.login)
        self._install(client, auth)
        try:
            return await call()
        except HTTPException as error:
            if error.status in (400, 401):
                self._token_trouble(f"token rejected by Twitch after refresh ({error.status})")
            raise

    def _install(self, client: ChatClient, auth: ChatAuth) -> None:
        install_token(client, ChatAuth(auth.access_token, auth.user_id or self.bot_id, auth.login))
        self._token = auth.access_token

    async def _supervise(self, client: ChatClient) -> None:
        """Until stopped, or until the sockets are gone for good (then a new session)."""
        start = time.monotonic()
        self._down_since = None
        self._next_token_sync = start + TOKEN_SYNC_EVERY_S
        self._token_missing, self._token_retry_at = False, 0.0
        self._next_channel_retry = start + RETRY_CHANNELS_EVERY_S
        while not self._stopping.is_set():
            now = time.monotonic()
            if not self._track_connection(client, now):
                return
            await self._watch_token(client, now)
            if now >= self._next_shard_sync and not await self._sync_shards(client):
                self._next_shard_sync = now + SHARD_RETRY_EVERY_S
            while self._resubscribe:
                await self._subscribe_again(client, self._resubscribe.popleft())
            if self._retry_channels and now >= self._next_channel_retry:
                self._next_channel_retry = now + RETRY_CHANNELS_EVERY_S
                for broadcaster_id, login in list(self._retry_channels.items()):
                    await self._subscribe_channel(client, broadcaster_id, login)
            await asyncio.sleep(SUPERVISE_EVERY_S)

    def _track_connection(self, client: ChatClient, now: float) -> bool:
        """Mirror the sockets into ``ChatState``; False once this session should be rebuilt
        (no socket left, or TwitchIO's own reconnects failing for too long)."""
        live = [s for s in client.sockets() if s.connected and s.session_id]
        if live:
            self._down_since = None
            self.state.set_connected(True, self.state.connected_since or now)
            return True
        self.state.set_connected(False)
        self._down_since = self._down_since or now
        if not client.sockets():
            self.errors.add("eventsub_closed", "no EventSub socket left")
            return False
        return now - self._down_since <= DOWN_REBUILD_AFTER_S

    async def _watch_token(self, client: ChatClient, now: float) -> None:
        if not client.has_token(self.bot_id):
            if not self._token_missing:
                self._token_missing = True
                self._token_dropped()
            if now >= self._token_retry_at and not await self._reinstall_token(client):
                self._token_retry_at = now + TOKEN_RETRY_EVERY_S
        elif self._token_missing:
            self._token_missing, self._token_retry_at = False, 0.0
        elif now >= self._next_token_sync:
            self._next_token_sync = now + TOKEN_SYNC_EVERY_S
            await self._sync_token(client)

    def _token_dropped(self) -> None:
        """TwitchIO removes a token whose refresh failed and says nothing: every later request
        would go out unauthenticated. Report it (the provider's token is put back below)."""
        self.tokens_dropped += 1
        self._token_trouble("TwitchIO dropped the bot token (its refresh failed)")
        self.errors.add("eventsub_token_dropped", "TwitchIO dropped the bot token")
        log.error("eventsub: TwitchIO dropped the bot token; asking the credentials provider")

    async def _reinstall_token(self, client: ChatClient) -> bool:
        """The provider's token back into TwitchIO, once Twitch accepts it."""
        try:
            auth = await self.credentials.force_refresh(self.login)
            info = await client.validate(auth.access_token)
        except (CredentialsError, HTTPException) as error:
            log.warning("eventsub: still no usable token (%s)", type(error).__name__)
            return False
        if not info.user_id or str(info.user_id) != self.bot_id:
            return False
        self._install(client, auth)
        self.token_problem = ""
        log.info("eventsub: bot token restored")
        return True

    async def _sync_token(self, client: ChatClient) -> None:
        try:
            auth = await self.credentials.get_chat_auth(self.login)
        except CredentialsError as error:
            self._token_trouble(f"credentials unavailable ({error.code})")
            return
        if auth.access_token != self._token:
            self._install(client, auth)

    def _token_trouble(self, reason: str) -> None:
        if reason != self.token_problem:
            log.error("eventsub: %s", reason)
        self.token_problem = reason

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        self.state.set_connected(False)
        self.state.set_logged_in(False)
        self.state.forget_joined()
        self.conduit = None
        self._shard_sessions.clear()
        self._conduit_subscribed.clear()
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    # -- EventHandler (called by the adapter's sockets) --------------------------------

    def notification(self, message: dict[str, Any], received_at: float) -> None:
        self._last_read = time.monotonic()
        self.counters.received += 1
        try:
            metadata = message["metadata"]
            message_id = str(metadata.get("message_id") or "")
            if message_id and not self.recent.first_time(message_id):  # no id: deliver
                self.duplicates += 1
                return
            kind = str(metadata.get("subscription_type") or "")
            event = message["payload"]["event"]
            typed = self.mapper.to_message(
                kind, event, timestamp_ms(metadata.get("message_timestamp"))
            )
        except UnknownEvent as error:
            self.unhandled += 1
            self.errors.add("eventsub_unhandled", str(error))
            log.warning("eventsub: %s", error)
            return
        except Exception as error:  # a malformed event must not stop the socket's read loop
            self.counters.parse_errors += 1
            self.errors.add("eventsub_bad_event", f"{type(error).__name__}: {error}"[:200])
            log.error("eventsub: malformed notification (%s)", type(error).__name__)
            return
        self.sink(typed, received_at)
        if self._on_self_message is not None:
            self._report_if_self(typed)

    def _report_if_self(self, message: TwitchMessage) -> None:
        own = self_message(message, self.bot_id)
        if own is None or self._on_self_message is None:
            return
        try:
            self._on_self_message(*own)
        except Exception:  # the watcher's trouble must not cost the socket's read loop
            self.errors.add("handler_error", "a self message could not be reported")
            log.exception("eventsub: on_self_message failed for %s", own[1])

    def revocation(self, subscription: dict[str, Any]) -> None:
        self._last_read = time.monotonic()
        status = str(subscription.get("status") or "")
        condition = subscription.get("condition") or {}
        broadcaster = str(condition.get("broadcaster_user_id") or "")
        channel = self.broadcasters.get(broadcaster, broadcaster)
        final = status in FINAL_REVOCATIONS
        self._conduit_subscribed.discard((str(subscription.get("type") or ""), broadcaster))
        self.revocations.append(
            {
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "type": str(subscription.get("type") or ""),
                "status": status,
                "channel": channel,
                "resubscribing": not final,
            }
        )
        self.errors.add("eventsub_revoked", f"{subscription.get('type')} for {channel}: {status}")
        log.warning("eventsub: %s for %s revoked (%s)", subscription.get("type"), channel, status)
        if final:
            self.state.set_joined(channel, False)
            self.state.mark_failed(channel, f"subscription revoked: {status}")
        else:
            self._resubscribe.append(subscription)

    def welcomed(self, session_id: str) -> None:
        self.session_id = session_id
        self._last_read = time.monotonic()
        self.state.set_server(self.ws_url)

    def reconnecting(self, why: str) -> None:
        self.state.mark_reconnect()
        log.info("eventsub: reconnecting (%s)", why)

    async def _subscribe_again(self, client: ChatClient, subscription: dict[str, Any]) -> None:
        kind = next((k for k in SUBSCRIPTIONS if k.type == subscription.get("type")), None)
        condition = subscription.get("condition") or {}
        broadcaster = str(condition.get("broadcaster_user_id") or "")
        if kind is None or not broadcaster:
            return
        try:
            await self._create_subscription(client, kind, broadcaster)
        except (HTTPException, CredentialsError, ConduitError) as error:
            channel = self.broadcasters.get(broadcaster, broadcaster)
            self.state.mark_failed(channel, f"re-subscribe failed: {type(error).__name__}")
            self.errors.add("eventsub_resubscribe_failed", f"{channel}: {kind.type}")

    # -- status ---------------------------------------------------------------------

    def readiness(self) -> list[str]:
        token = [f"eventsub token: {self.token_problem}"] if self.token_problem else []
        return token + chat_readiness(self.state.snapshot())

    def snapshot(self) -> ChatSnapshot:
        return self.state.snapshot()

    def channel_control(self) -> None:
        """Channels are fixed at start on EventSub (subscriptions per broadcaster)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Secret-free detail for ``/_debug/twitch``."""
        client = self._client
        sockets = client.sockets() if client is not None else []
        return {
            "sessionId": self.session_id or None,
            "botUserId": self.bot_id or None,
            "sockets": len(sockets),
            "subscriptions": sum(s.subscription_count for s in sockets)
            + len(self._conduit_subscribed),
            "maxSubscriptionsPerSocket": MAX_WEBSOCKET_SUBSCRIPTIONS,
            "transport": self.transport,
            "conduit": self._describe_conduit(client),
            "duplicatesDropped": self.duplicates,
            "unhandledEvents": self.unhandled,
            "revocations": list(self.revocations),
            "token": {
                "state": "degraded" if self.token_problem else "ok",
                "reason": self.token_problem,
                "droppedByTwitchio": self.tokens_dropped,
            },
        }

    def _describe_conduit(self, client: ChatClient | None) -> dict[str, Any] | None:
        if self.transport != "conduit":
            return None
        conduit = self.conduit
        live = client.shard_sessions() if client is not None else {}
        return {
            "id": conduit.id if conduit is not None else None,
            "shardCount": conduit.shard_count if conduit is not None else 0,
            "shards": [
                {
                    "id": shard,
                    "sessionId": session,
                    "connected": live.get(shard) == session,
                }
                for shard, session in sorted(self._shard_sessions.items())
            ],
        }


def _http_reason(error: HTTPException) -> str:
    extra = error.extra if isinstance(error.extra, dict) else {}
    return f"HTTP {error.status}: {str(extra.get('message', ''))[:120]}"
