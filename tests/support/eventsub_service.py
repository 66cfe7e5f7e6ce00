"""The real service with TWITCH_SOURCE=eventsub, wired to a mock of Twitch's EventSub
WebSocket, Helix and OAuth (tests/support/eventsub_mock.py), and what a test reads back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings
from ingress_egress.credentials.static import StaticTokenProvider
from ingress_egress.service import Service
from ingress_egress.sources.eventsub import EventSubSource
from tests.support.eventsub_mock import EventSubMock, Session
from tests.support.service import eventually, running
from tests.support.twitch_oauth_mock import TwitchOAuthMock

USERS = {"alpha": "501", "beta": "502"}  # login -> user id, as Helix answers
MESSAGE = "channel.chat.message"
TYPES = {  # every subscription type the source asks for, per channel
    "channel.chat.message",
    "channel.chat.notification",
    "channel.chat.clear",
    "channel.chat.clear_user_messages",
    "channel.chat.message_delete",
    "channel.chat_settings.update",
}


@dataclass
class Harness:
    mock: EventSubMock
    oauth: TwitchOAuthMock
    service: Service
    publisher: MemoryPublisher | None
    token: str

    @property
    def source(self) -> EventSubSource:
        assert isinstance(self.service.source, EventSubSource)
        return self.service.source

    def envelopes(self) -> list[dict[str, Any]]:
        assert self.publisher is not None
        return [json.loads(m.data) for m in self.publisher.messages]

    def chat(self) -> list[tuple[str, str]]:
        return [
            (e["payload"]["messageId"], e["payload"]["text"])
            for e in self.envelopes()
            if e["type"] == "external.chat.message.v1"
        ]

    async def subscribed(self, channels: int = 2) -> Session:
        """The one live session, once it holds every subscription."""
        mock = self.mock
        await eventually(
            lambda: (
                len(mock.live()) == 1 and len(mock.subscriptions_of(mock.live()[0])) == 6 * channels
            ),
            20,
            "all subscriptions",
        )
        return mock.live()[0]

    async def old_socket_gone(self, connections: int) -> None:
        """Wait until the client holds a socket only for each live session (it has closed the
        one Twitch closed after a hand-over), or until it opened a connection beyond
        ``connections`` (a reconnect it should not make: the caller's assertion reports it)."""
        mock = self.mock
        await eventually(
            lambda: (
                self.source.describe()["sockets"] == len(mock.live())
                or mock.connections > connections
            ),
            15,
            "the old socket closed by the client",
        )


@asynccontextmanager
async def eventsub_service(
    *,
    channels: tuple[str, ...] = ("alpha", "beta"),
    token: str | None = None,
    keepalive_s: float = 10.0,
    settings: dict[str, Any] | None = None,
    publisher: MemoryPublisher | None = None,
    scopes: tuple[str, ...] = ("user:read:chat",),
    users: dict[str, str] | None = None,
) -> AsyncIterator[Harness]:
    oauth = TwitchOAuthMock(client_id="mock-client-id")
    access, _ = oauth.issue(user_id="1001", login="testbot", scopes=scopes)
    if token is not None:  # a chosen value (the canary): re-register the grant under it
        oauth.access[token] = oauth.access.pop(access)
        access = token
    async with EventSubMock(oauth, client_id="mock-client-id", users=dict(users or USERS)) as mock:
        base = Settings.defaults(
            message_bus_driver="memory",
            twitch_source="eventsub",
            twitch_bot_username="testbot",
            twitch_client_id="mock-client-id",
            twitch_oauth_token=access,
            twitch_channels=channels,
            twitch_eventsub_ws_url=mock.ws_url,
            twitch_helix_url=mock.helix_url,
            twitch_oauth_url=mock.oauth_url,
            host="127.0.0.1",
            port=0,
            irc_reconnect_initial_ms=50,
            irc_reconnect_max_ms=500,
        )
        if settings:
            base = base.replace(**settings)
        memory = publisher if publisher is not None else None
        if memory is None and base.bus.driver == "memory":
            memory = MemoryPublisher()
        async with running(
            base,
            publisher=memory,
            credentials=StaticTokenProvider("testbot", access),
            eventsub_keepalive_s=keepalive_s,
        ) as service:
            yield Harness(mock, oauth, service, memory, access)
