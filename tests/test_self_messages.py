"""The bot's own messages on the read side: ``payload.isSelf`` (present and true only there,
so every other envelope is unchanged) and the ``on_self_message`` hook that confirms sends
(egress/echo.py), over IRC (both codecs, a real simulator socket) and EventSub (the mock of
Twitch's EventSub WebSocket, Helix and OAuth)."""

from __future__ import annotations

import asyncio
import functools
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from ingress_egress import _native
from ingress_egress.config import parse_irc_url
from ingress_egress.credentials import StaticTokenProvider
from ingress_egress.egress.echo import EchoWatch
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope.outbound import MessageEncoder
from ingress_egress.retry import Backoff
from ingress_egress.simulator import ChatSimulator, room_id_for, user_id_for
from ingress_egress.sources.eventsub import EventSubSource
from ingress_egress.sources.eventsub.mapping import CHAT_MESSAGE, EventMapper, self_message
from ingress_egress.sources.irc.codec import PythonCodec, make_codec
from ingress_egress.sources.irc.pool import ChatPool, PoolLimits
from ingress_egress.sources.irc.transport import open_transport
from ingress_egress.status import ChatState, Counters, ErrorLog
from tests.support import eventsub_events as ev
from tests.support.eventsub_mock import EventSubMock
from tests.support.irc_lines import FIXTURE_LINES
from tests.support.schemas import validate_envelope
from tests.support.service import eventually
from tests.support.twitch_oauth_mock import TwitchOAuthMock

pytestmark = pytest.mark.timeout(60)

BOT = "selfbot"
BOT_ID = user_id_for(BOT)  # what the simulator's GLOBALUSERSTATE says the bot's id is
CODECS = ["python", "native"] if _native.speedups is not None else ["python"]


def relayed(login: str, user_id: str, message_id: str, text: str, channel: str = "alpha") -> str:
    """A PRIVMSG as Twitch relays it to the channel's readers (a bot's own one included)."""
    tags = (
        f"@badge-info=;badges=;color=;display-name={login};emotes=;first-msg=0;flags=;"
        f"id={message_id};mod=0;returning-chatter=0;room-id={room_id_for(channel)};"
        f"subscriber=0;tmi-sent-ts=1796400000000;turbo=0;user-id={user_id};user-type="
    )
    return f"{tags} :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{channel} :{text}"


def payloads(messages: list[OutboundMessage]) -> list[dict[str, Any]]:
    return [json.loads(message.data)["payload"] for message in messages]


# -- the envelope's shape ---------------------------------------------------------------------


def test_is_self_is_true_on_the_bots_messages_and_absent_on_every_other() -> None:
    lines = [
        relayed("viewer", "123", "v-1", "hi"),
        relayed(BOT, BOT_ID, "b-1", "pong"),
        relayed("viewer", BOT_ID + "1", "v-2", "near miss"),
    ]
    codec = PythonCodec(EnvelopeBuilder())
    codec.set_self_user_id(BOT_ID)
    decoded = codec.decode(lines, 1_796_400_000.5)
    bodies = [json.loads(message.data) for message in decoded.envelopes]
    for body in bodies:
        validate_envelope(body)
    assert [body["payload"].get("isSelf") for body in bodies] == [None, True, None]
    assert list(bodies[1]["payload"])[-1] == "isSelf"  # appended: the rest is unchanged
    assert decoded.self_messages == (("alpha", "b-1"),)


def test_envelopes_of_others_are_byte_identical_with_and_without_a_self_user_id() -> None:
    """Every fixture line (real Twitch shapes) with the bot set to a user of some of them:
    only that user's chat envelopes change, by the one key."""
    seed = 3

    def codec(self_user_id: str | None) -> PythonCodec:
        stream = random.Random(seed)
        python = PythonCodec(EnvelopeBuilder(), random_hex=lambda n: stream.randbytes(40 * n).hex())
        python.set_self_user_id(self_user_id)
        return python

    plain = codec(None).decode(FIXTURE_LINES, 1_796_400_000.5).envelopes
    marked = codec("11148817").decode(FIXTURE_LINES, 1_796_400_000.5).envelopes
    changed = 0
    for before, after in zip(plain, marked, strict=True):
        if before.data == after.data:
            assert b'"isSelf"' not in after.data
            continue
        changed += 1
        body = json.loads(after.data)
        assert body["user"]["id"] == "11148817" and body["payload"].pop("isSelf") is True
        assert body == json.loads(before.data)
    assert changed == 3


def test_eventsub_mapping_names_the_bots_chat_messages_only() -> None:
    mapper = EventMapper()
    room = ev.broadcaster("501", "alpha")
    own = ev.chat_message(room, "m-1", [ev.text("pong")], chatter=("1001", "testbot", "TestBot"))
    other = ev.chat_message(room, "m-2", [ev.text("ping")])
    typed_own = mapper.to_message(CHAT_MESSAGE, own, 1_796_400_000_000)
    assert self_message(typed_own, "1001") == ("alpha", "m-1")
    assert self_message(typed_own, "") is None  # the bot's id is not known yet
    assert self_message(mapper.to_message(CHAT_MESSAGE, other, None), "1001") is None
    notice = mapper.to_message(
        "channel.chat.notification", ev.resub(room, "n-1", 3) | {"chatter_user_id": "1001"}, None
    )
    assert self_message(notice, "1001") is None


# -- IRC: a real simulator socket -------------------------------------------------------------


@pytest.mark.parametrize("kind", CODECS)
async def test_the_bots_message_from_the_socket_reaches_the_hook_and_confirms_the_send(
    kind: str,
) -> None:
    """The simulator relays chat with the bot's user-id (as Twitch relays what the bot sent
    from another connection); the pool hands its id to ``on_self_message``, wired to an
    ``EchoWatch`` as the composition root wires it."""
    codec = make_codec(EnvelopeBuilder(), pure=kind == "python")
    assert codec.name == kind
    codec.set_self_user_id(BOT_ID)
    echo = EchoWatch(channels=("alpha",))
    echo.expect("b-1", "#alpha")  # the send, answered with its id
    hooked: list[tuple[str, str]] = []

    def on_self_message(channel: str, message_id: str) -> None:
        hooked.append((channel, message_id))
        echo.on_self_message(channel, message_id)

    received: list[OutboundMessage] = []

    class Sink:
        def accept_many(self, envelopes: list[OutboundMessage], *, chat_only: bool = False) -> None:
            received.extend(envelopes)

    lines = [
        relayed("viewer", "123", "v-1", "!ping"),
        relayed(BOT, BOT_ID, "b-1", "pong"),
        relayed("viewer", "123", "v-2", "thanks"),
    ]
    async with ChatSimulator(replay_lines=lines) as sim:
        pool = ChatPool(
            endpoint=parse_irc_url(f"irc://127.0.0.1:{sim.port}"),
            channels=("alpha",),
            login=BOT,
            credentials=StaticTokenProvider(BOT, "tok_self_0123456789abcdef"),
            codec=codec,
            transport_factory=functools.partial(open_transport, split_lines=codec.split_lines),
            sink=Sink(),
            state=ChatState("irc", BOT, ()),
            counters=Counters(),
            errors=ErrorLog(),
            limits=PoolLimits(connect_interval_s=0.0),
            on_self_message=on_self_message,
        )
        runner = asyncio.create_task(pool.run())
        try:
            await eventually(lambda: len(received) >= 3, 20, "the three messages")
        finally:
            await pool.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    chat = [p for p in payloads(received) if "text" in p and "messageId" in p]
    assert [(p["messageId"], p.get("isSelf")) for p in chat] == [
        ("v-1", None),
        ("b-1", True),
        ("v-2", None),
    ]
    assert hooked == [("alpha", "b-1")]
    assert echo.confirmed == 1 and echo.sweep(1e12) == []


async def test_a_failing_hook_costs_nothing_but_an_error_record() -> None:
    codec = make_codec(EnvelopeBuilder())
    codec.set_self_user_id(BOT_ID)
    received: list[OutboundMessage] = []
    errors = ErrorLog()

    class Sink:
        def accept_many(self, envelopes: list[OutboundMessage], *, chat_only: bool = False) -> None:
            received.extend(envelopes)

    def broken(channel: str, message_id: str) -> None:
        raise RuntimeError("watcher down")

    lines = [relayed(BOT, BOT_ID, "b-1", "pong"), relayed("viewer", "123", "v-1", "hi")]
    async with ChatSimulator(replay_lines=lines) as sim:
        pool = ChatPool(
            endpoint=parse_irc_url(f"irc://127.0.0.1:{sim.port}"),
            channels=("alpha",),
            login=BOT,
            credentials=StaticTokenProvider(BOT, "tok_self_0123456789abcdef"),
            codec=codec,
            sink=Sink(),
            state=ChatState("irc", BOT, ()),
            counters=Counters(),
            errors=errors,
            limits=PoolLimits(connect_interval_s=0.0),
            on_self_message=broken,
        )
        runner = asyncio.create_task(pool.run())
        try:
            await eventually(lambda: len(received) >= 2, 20, "both messages")
        finally:
            await pool.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    assert [entry["code"] for entry in errors.entries].count("handler_error") == 1
    assert pool.irc_connections[0].reconnects == 0


# -- EventSub: the mock of Twitch ---------------------------------------------------------------


@asynccontextmanager
async def eventsub_source(
    on_self_message: Any, outbound: list[OutboundMessage]
) -> AsyncIterator[tuple[EventSubMock, EventSubSource, EnvelopeBuilder]]:
    oauth = TwitchOAuthMock(client_id="mock-client-id")
    access, _ = oauth.issue(user_id="1001", login="testbot", scopes=("user:read:chat",))
    async with EventSubMock(oauth, client_id="mock-client-id", users={"alpha": "501"}) as mock:
        builder = EnvelopeBuilder(transport="eventsub")
        source = EventSubSource(
            channels=("alpha",),
            login="testbot",
            client_id="mock-client-id",
            credentials=StaticTokenProvider("testbot", access),
            sink=MessageEncoder(builder, outbound.append),
            state=ChatState("eventsub", "testbot", ("alpha",)),
            counters=Counters(),
            errors=ErrorLog(),
            backoff=Backoff(0.05, 0.5),
            ws_url=mock.ws_url,
            helix_url=mock.helix_url,
            oauth_url=mock.oauth_url,
            on_bot_user_id=builder.set_self_user_id,
            on_self_message=on_self_message,
        )
        runner = asyncio.create_task(source.run())
        try:
            yield mock, source, builder
        finally:
            await source.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)


async def test_eventsub_marks_the_bots_messages_and_hands_their_ids_to_the_hook() -> None:
    hooked: list[tuple[str, str]] = []
    outbound: list[OutboundMessage] = []
    async with eventsub_source(lambda *own: hooked.append(own), outbound) as (mock, _, builder):
        await eventually(
            lambda: len(mock.live()) == 1 and len(mock.subscriptions_of(mock.live()[0])) == 6,
            20,
            "subscribed",
        )
        assert builder.self_user_id == "1001"  # learned from the validated token
        session = mock.live()[0]
        room = ev.broadcaster("501", "alpha")
        bot = ("1001", "testbot", "TestBot")
        own = ev.chat_message(room, "m-own", [ev.text("pong")], chatter=bot)
        await mock.notify(session, CHAT_MESSAGE, "501", ev.chat_message(room, "m-1", []))
        await mock.notify(session, CHAT_MESSAGE, "501", own)
        await eventually(lambda: len(hooked) == 1, 15, "the bot's message")
        await eventually(
            lambda: sum(m.type == "external.chat.message.v1" for m in outbound) == 2, 15, "both"
        )
    chat = [json.loads(m.data) for m in outbound if m.type == "external.chat.message.v1"]
    for body in chat:
        validate_envelope(body)
    assert [(b["payload"]["messageId"], b["payload"].get("isSelf")) for b in chat] == [
        ("m-1", None),
        ("m-own", True),
    ]
    assert hooked == [("alpha", "m-own")]
