"""TWITCH_SOURCE=eventsub end to end: the real service (TwitchIO 3 underneath) against a mock
of Twitch's EventSub WebSocket, Helix and OAuth (tests/support/eventsub_mock.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.support import eventsub_events as ev
from tests.support.eventsub_service import MESSAGE, TYPES, eventsub_service
from tests.support.nats import NatsHarness, NatsServer
from tests.support.schemas import validate_envelope
from tests.support.service import eventually, get, wait_status

pytestmark = pytest.mark.timeout(120)

ALPHA = ev.broadcaster("501", "alpha")
BETA = ev.broadcaster("502", "beta")
CANARY = "canarytoken0123456789abcdef"


async def test_every_chat_event_becomes_an_envelope(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # TwitchIO would write .tio.tokens.json here
    async with eventsub_service(channels=("alpha", "beta", "nosuchuser")) as h:
        session = await h.subscribed(2)
        assert {s.type for s in h.mock.subscriptions_of(session)} == TYPES
        for sub in h.mock.subscriptions_of(session):
            assert sub.condition["user_id"] == "1001"  # as the bot user
        ready = await wait_status(h.service, "/readyz", 503)
        assert any("nosuchuser" in reason for reason in ready["reasons"])
        # Each channel's settings on subscribing, as IRC's ROOMSTATE on JOIN.
        await eventually(lambda: len(h.envelopes()) == 2, 15, "settings on subscribing")
        joined = h.envelopes()
        assert [e["source"]["channel"] for e in joined] == ["alpha", "beta"]
        for envelope in joined:
            validate_envelope(envelope)
            assert envelope["type"] == "external.chat.roomstate.v1"
            assert envelope["payload"]["followersOnlyMinutes"] == 10
            assert envelope["payload"]["slowSeconds"] == 0

        fragments = [
            ev.text("hi "),
            ev.emote("Kappa", "25"),
            ev.text(" "),
            ev.cheermote("Cheer", 100),
        ]
        badges = [ev.badge("subscriber", "12", "14"), ev.badge("moderator", "1")]
        await h.mock.notify(
            session,
            MESSAGE,
            "501",
            ev.chat_message(ALPHA, "m-1", fragments, badges=badges, cheer=100),
        )
        await h.mock.notify(session, "channel.chat.notification", "502", ev.resub(BETA, "n-1", 14))
        await h.mock.notify(
            session, "channel.chat.message_delete", "501", ev.message_delete(ALPHA, "m-1", "viewer")
        )
        await h.mock.notify(
            session,
            "channel.chat.clear_user_messages",
            "501",
            ev.clear_user(ALPHA, "123", "viewer"),
        )
        await h.mock.notify(session, "channel.chat.clear", "502", ev.clear(BETA))
        await h.mock.notify(
            session, "channel.chat_settings.update", "502", ev.chat_settings(BETA, slow=30)
        )
        await eventually(lambda: len(h.envelopes()) == 8, 15, "six more envelopes")

        envelopes = h.envelopes()[2:]
        for envelope in envelopes:
            validate_envelope(envelope)
            assert envelope["payload"]["transport"] == "eventsub"
        message, notice, delete, ban, clear, roomstate = envelopes
        assert message["type"] == "external.chat.message.v1"
        assert message["source"] == {"platform": "twitch", "channel": "alpha", "channelId": "501"}
        payload = message["payload"]
        assert payload["text"] == "hi Kappa Cheer100"
        assert payload["emotes"] == [{"id": "25", "start": 3, "end": 7, "name": "Kappa"}]
        assert payload["bits"] == 100
        assert payload["cheers"] == [{"prefix": "Cheer", "amount": 100, "start": 9, "end": 16}]
        assert payload["badges"] == ["subscriber", "moderator"]
        assert payload["badgeInfo"] == {"subscriber": "14"}
        assert payload["isMod"] is True and payload["isSubscriber"] is True
        assert payload["color"] == "#1E90FF"
        assert message["user"]["name"] == "viewer" and message["user"]["id"] == "123"
        assert notice["type"] == "external.chat.notification.v1"
        assert notice["payload"]["noticeType"] == "resub"
        assert notice["payload"]["params"]["cumulative-months"] == "14"
        assert notice["payload"]["params"]["sub-plan"] == "1000"
        assert delete["payload"]["action"] == "delete"
        assert delete["payload"]["targetMessageId"] == "m-1"
        assert delete["payload"]["text"] == "hi Kappa Cheer100"  # remembered from the message
        assert ban["payload"]["targetLogin"] == "viewer"
        assert clear["payload"]["action"] == "clear"
        assert roomstate["type"] == "external.chat.roomstate.v1"
        assert roomstate["payload"]["slowSeconds"] == 30
        assert roomstate["payload"]["subscribersOnly"] is True

        debug = await wait_status(h.service, "/_debug/twitch", 200)
        assert debug["transport"] == "eventsub"
        assert debug["joinedChannels"] == ["alpha", "beta"]
        assert "nosuchuser" in debug["failedChannels"]
        assert debug["eventsub"]["subscriptions"] == 12
        assert debug["endpoint"] == h.mock.ws_url
    assert not (tmp_path / ".tio.tokens.json").exists()


async def test_session_reconnect_loses_and_duplicates_nothing() -> None:
    async with eventsub_service() as h:
        old = await h.subscribed(2)
        await h.mock.notify(
            old, MESSAGE, "501", ev.chat_message(ALPHA, "before", [ev.text("before")])
        )
        await eventually(lambda: len(h.chat()) == 1, 15, "first message")

        import asyncio

        h.mock.hold_welcome = asyncio.Event()  # the new connection waits to be welcomed
        await h.mock.reconnect(old)
        await eventually(lambda: len(h.mock.sessions) == 2, 15, "second connection")
        # The gap: Twitch still delivers on the old socket until the new one is welcomed.
        gap = [
            await h.mock.notify(
                old, MESSAGE, "501", ev.chat_message(ALPHA, f"gap-{i}", [ev.text(f"gap {i}")])
            )
            for i in range(3)
        ]
        # The old socket is still read while the new one waits for its welcome.
        await eventually(lambda: len(h.chat()) == 4, 15, "the gap messages from the old socket")
        h.mock.hold_welcome.set()
        new = h.mock.sessions[1]
        await eventually(lambda: new.welcomed.is_set(), 15, "new session welcomed")
        assert new.reconnected_from == old.id
        await eventually(lambda: h.source.session_id == new.id, 15, "client on the new session")
        # A redelivery of the last gap message (same message id) and a new one, on the new socket.
        await h.mock.notify(
            new,
            MESSAGE,
            "501",
            ev.chat_message(ALPHA, "gap-2", [ev.text("gap 2")]),
            message_id=gap[2],
        )
        await h.mock.notify(
            new, MESSAGE, "501", ev.chat_message(ALPHA, "after", [ev.text("after")])
        )
        await h.mock.close_session(old)  # Twitch closes the old connection
        # "after" follows the redelivery on the same socket: once it is in, the redelivery
        # has been handled too.
        await eventually(lambda: ("after", "after") in h.chat(), 15, "all messages")
        await h.old_socket_gone(connections=2)
        assert h.chat() == [
            ("before", "before"),
            ("gap-0", "gap 0"),
            ("gap-1", "gap 1"),
            ("gap-2", "gap 2"),
            ("after", "after"),
        ]
        assert h.source.duplicates == 1
        assert h.mock.connections == 2  # no extra reconnect after Twitch closed the old socket
        assert len(h.mock.subscribe_calls) == 12  # subscriptions carried over, not re-created
        debug = await wait_status(h.service, "/_debug/twitch", 200)
        assert debug["reconnects"] >= 1
        assert debug["connected"] is True


async def test_keepalive_timeout_reconnects_and_resubscribes() -> None:
    async with eventsub_service(keepalive_s=1) as h:
        first = await h.subscribed(2)
        first.silent = True  # no keepalives, no events: the client must give up on it
        await eventually(
            lambda: (
                any(s is not first for s in h.mock.live())
                and len(h.mock.subscriptions_of(h.mock.live()[-1])) == 12
            ),
            40,
            "a new session with every subscription again",
        )
        second = h.mock.live()[-1]
        assert second.reconnected_from == ""  # a fresh connection, not a reconnect_url
        await h.mock.notify(
            second, MESSAGE, "502", ev.chat_message(BETA, "x-1", [ev.text("still here")])
        )
        await eventually(lambda: h.chat() == [("x-1", "still here")], 15, "message after reconnect")
        assert h.service.state.reconnects >= 1
        client = h.source._client
        assert client is not None
        assert [s.session_id for s in client.sockets()] == [second.id]
        assert list(client._websockets["1001"]) == [second.id]  # filed under its new id


async def test_revocations_are_reported_and_resubscribed_where_allowed() -> None:
    async with eventsub_service() as h:
        session = await h.subscribed(2)
        calls = len(h.mock.subscribe_calls)
        retryable = h.mock.subscription(session, "channel.chat.clear", "501")
        await h.mock.revoke(session, retryable, "notification_failures_exceeded")
        await eventually(
            lambda: len(h.mock.subscribe_calls) == calls + 1, 15, "re-subscribed after revocation"
        )
        assert h.mock.subscription(session, "channel.chat.clear", "501")  # back again

        final = h.mock.subscription(session, MESSAGE, "502")
        await h.mock.revoke(session, final, "authorization_revoked")
        debug = await wait_status(h.service, "/_debug/twitch", 200)
        await eventually(lambda: len(h.source.revocations) == 2, 15, "both revocations")
        debug = await wait_status(h.service, "/_debug/twitch", 200)
        revocations = debug["eventsub"]["revocations"]
        assert [
            (r["type"], r["status"], r["channel"], r["resubscribing"]) for r in revocations
        ] == [
            ("channel.chat.clear", "notification_failures_exceeded", "alpha", True),
            (MESSAGE, "authorization_revoked", "beta", False),
        ]
        assert debug["failedChannels"]["beta"] == "subscription revoked: authorization_revoked"
        assert len(h.mock.subscribe_calls) == calls + 1  # never for authorization_revoked
        ready = await wait_status(h.service, "/readyz", 503)
        assert any("beta" in reason for reason in ready["reasons"])


async def test_a_token_twitchio_dropped_is_reported_degraded_and_never_leaks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # TwitchIO's debug logging included
    async with eventsub_service(token=CANARY) as h:
        await h.subscribed(2)
        await wait_status(h.service, "/readyz", 200)
        # The token stops working and TwitchIO's own refresh fails: TwitchIO then drops the
        # token without a word (what its validation loop does). Run that very code path.
        h.oauth.revoke_access(CANARY)
        client = h.source._client
        assert client is not None
        await client._http._refresh_token("1001", "not-a-refresh-token")
        assert not client.has_token("1001")

        ready = await wait_status(h.service, "/readyz", 503)
        assert any(r.startswith("eventsub token:") for r in ready["reasons"]), ready
        debug = await wait_status(h.service, "/_debug/twitch", 200)
        assert debug["eventsub"]["token"]["state"] == "degraded"
        assert debug["eventsub"]["token"]["droppedByTwitchio"] >= 1
        for path in ("/_debug/twitch", "/readyz", "/metrics"):
            assert CANARY not in (await get(h.service, path)).text
    assert CANARY not in caplog.text
    assert any("dropped the bot token" in r.getMessage() for r in caplog.records)


async def test_envelopes_reach_jetstream(nats_server: NatsServer) -> None:
    settings = {"message_bus_driver": "nats", "nats_url": nats_server.url}
    async with eventsub_service(settings=settings) as h:
        session = await h.subscribed(2)
        for i in range(20):
            room, room_id = (ALPHA, "501") if i % 2 else (BETA, "502")
            await h.mock.notify(
                session, MESSAGE, room_id, ev.chat_message(room, f"js-{i}", [ev.text(f"n {i}")])
            )
        await eventually(lambda: h.service.counters.published >= 22, 30, "published")
    got = await NatsHarness(nats_server.url, "INGRESS", "internal.ingress.v1").received(22)
    everything = [json.loads(item.data) for item in got]
    assert len(everything) == 22  # two channels' settings, then the 20 messages
    envelopes = [e for e in everything if e["type"] == "external.chat.message.v1"]
    assert sorted(e["payload"]["messageId"] for e in envelopes) == sorted(
        f"js-{i}" for i in range(20)
    )
    for envelope in envelopes:
        validate_envelope(envelope)
        assert envelope["payload"]["transport"] == "eventsub"


async def test_a_malformed_event_is_counted_and_reading_goes_on() -> None:
    async with eventsub_service() as h:
        session = await h.subscribed(2)
        await h.mock.notify(session, MESSAGE, "501", "not an event object")  # type: ignore[arg-type]
        await h.mock.notify(
            session, MESSAGE, "501", ev.chat_message(ALPHA, "ok-1", [ev.text("ok")])
        )
        await eventually(lambda: h.chat() == [("ok-1", "ok")], 15, "the next message")
        assert h.service.counters.parse_errors == 1
        debug = await wait_status(h.service, "/_debug/twitch", 200)
        assert debug["lastError"]["code"] == "eventsub_bad_event"


async def test_a_token_twitch_rejects_even_after_a_refresh_is_reported() -> None:
    async with eventsub_service() as h:
        session = await h.subscribed(2)
        await wait_status(h.service, "/readyz", 200)
        h.oauth.revoke_access(h.token)  # the provider cannot refresh a fixed token
        sub = h.mock.subscription(session, "channel.chat.clear", "502")
        await h.mock.revoke(session, sub, "notification_failures_exceeded")  # -> re-subscribe
        ready = await wait_status(h.service, "/readyz", 503)
        assert "eventsub token: token rejected by Twitch after refresh (400)" in ready["reasons"]
        debug = await wait_status(h.service, "/_debug/twitch", 200)
        assert debug["failedChannels"]["beta"].startswith("re-subscribe failed")
        assert debug["eventsub"]["token"]["state"] == "degraded"
        assert h.token not in json.dumps(debug)


async def test_a_dropped_token_that_still_works_is_put_back() -> None:
    async with eventsub_service() as h:
        await h.subscribed(2)
        client = h.source._client
        assert client is not None
        client._http.remove_token("1001")  # what TwitchIO's failed refresh does
        await eventually(lambda: h.source.tokens_dropped == 1, 15, "the drop noticed")
        await eventually(lambda: client.has_token("1001"), 15, "the token put back")
        await wait_status(h.service, "/readyz", 200)
        debug = await wait_status(h.service, "/_debug/twitch", 200)
        assert debug["eventsub"]["token"] == {"state": "ok", "reason": "", "droppedByTwitchio": 1}
