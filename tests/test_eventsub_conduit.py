"""More channels than one EventSub WebSocket holds: the real service reads them over a conduit
(app token, shard sockets) from the mock's conduit endpoints (tests/support/eventsub_mock.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.support import eventsub_events as ev
from tests.support.eventsub_mock import MockConduit
from tests.support.eventsub_service import MESSAGE, TYPES, Harness, eventsub_service
from tests.support.service import eventually, wait_status

pytestmark = pytest.mark.timeout(180)

CHANNELS = {f"chan{n:02d}": str(600 + n) for n in range(60)}  # 360 subscriptions: 2 shards
SECRET = "mock-client-secret"  # the OAuth mock's client secret


def room(login: str) -> dict[str, str]:
    return ev.broadcaster(CHANNELS[login], login)


async def conduit_ready(h: Harness) -> MockConduit:
    """The one conduit, once both shards point at live sessions and all 360 subscriptions
    exist."""

    def ready() -> bool:
        if len(h.mock.conduits) != 1:
            return False
        conduit = next(iter(h.mock.conduits.values()))
        live = {s.id for s in h.mock.live()}
        return (
            len(conduit.shards) == 2
            and set(conduit.shards.values()) <= live
            and sum(1 for s in h.mock.subscriptions.values() if s.conduit_id) == 360
        )

    await eventually(ready, 60, "conduit with 2 shards and 360 subscriptions")
    return next(iter(h.mock.conduits.values()))


async def test_sixty_channels_over_a_conduit() -> None:
    async with eventsub_service(
        channels=tuple(CHANNELS),
        users=CHANNELS,
        scopes=("user:read:chat", "user:bot"),
        settings={"twitch_client_secret": SECRET},
    ) as h:
        conduit = await conduit_ready(h)
        assert conduit.shard_count == 2
        subs = [s for s in h.mock.subscriptions.values() if s.conduit_id]
        assert {s.type for s in subs} == TYPES
        assert all(s.condition["user_id"] == "1001" for s in subs)  # as the bot user
        assert all(c["transport"]["method"] == "conduit" for c in h.mock.subscribe_calls)
        per_channel = Counter(s.condition["broadcaster_user_id"] for s in subs)
        assert set(per_channel.values()) == {6} and len(per_channel) == 60

        # Messages from channels on both shards arrive as envelopes, as over one socket.
        senders = ["chan00", "chan01", "chan33", "chan59"]
        assert {h.mock.shard_of(conduit, CHANNELS[c]) for c in senders} == {"0", "1"}
        for login in senders:
            event = ev.chat_message(room(login), f"m-{login}", [ev.text(f"hi {login}")])
            await h.mock.notify_conduit(MESSAGE, CHANNELS[login], event)
        await eventually(lambda: len(h.chat()) == 4, 20, "messages from four channels")
        chat = [e for e in h.envelopes() if e["type"] == "external.chat.message.v1"]
        assert sorted(e["source"]["channel"] for e in chat) == senders  # two sockets: any order
        assert {e["payload"]["transport"] for e in chat} == {"eventsub"}

        debug = await wait_status(h.service, "/_debug/twitch", 200)
        block = debug["eventsub"]
        assert block["transport"] == "conduit"
        assert block["subscriptions"] == 360
        assert block["conduit"]["id"] == conduit.id
        assert block["conduit"]["shardCount"] == 2
        assert {(s["id"], s["sessionId"], s["connected"]) for s in block["conduit"]["shards"]} == {
            (shard, session, True) for shard, session in conduit.shards.items()
        }
        assert debug["connected"] is True
        await eventually(lambda: len(h.source.state.joined) == 60, 15, "every channel joined")


async def test_a_shard_session_reconnect_loses_nothing() -> None:
    async with eventsub_service(
        channels=tuple(CHANNELS),
        users=CHANNELS,
        scopes=("user:read:chat", "user:bot"),
        settings={"twitch_client_secret": SECRET},
    ) as h:
        conduit = await conduit_ready(h)
        other = h.mock.shard_session(conduit, "1")
        old = h.mock.shard_session(conduit, "0")
        connections = h.mock.connections
        h.mock.hold_welcome = asyncio.Event()  # the new connection waits to be welcomed
        await h.mock.reconnect(old)
        await eventually(
            lambda: h.mock.connections == connections + 1, 15, "reconnect_url connection"
        )
        # The gap: Twitch still delivers the shard's events on the old socket.
        gap = [
            await h.mock.notify_conduit(
                MESSAGE,
                CHANNELS["chan00"],
                ev.chat_message(room("chan00"), f"gap-{i}", [ev.text(f"gap {i}")]),
                session=old,
            )
            for i in range(3)
        ]
        # The old socket is still read while the new one waits for its welcome.
        await eventually(lambda: len(h.chat()) == 3, 15, "the gap messages from the old socket")
        h.mock.hold_welcome.set()
        new = h.mock.sessions[-1]
        await eventually(lambda: new.welcomed.is_set(), 15, "new shard session welcomed")
        assert new.reconnected_from == old.id
        await eventually(lambda: conduit.shards["0"] == new.id, 15, "shard 0 on the new session")
        # A redelivery of the last gap message on the new socket, and a fresh one on each shard.
        await h.mock.notify_conduit(
            MESSAGE,
            CHANNELS["chan00"],
            ev.chat_message(room("chan00"), "gap-2", [ev.text("gap 2")]),
            message_id=gap[2],
        )
        await h.mock.notify_conduit(
            MESSAGE, CHANNELS["chan00"], ev.chat_message(room("chan00"), "after", [ev.text("a")])
        )
        await h.mock.notify_conduit(
            MESSAGE, CHANNELS["chan01"], ev.chat_message(room("chan01"), "other", [ev.text("o")])
        )
        await h.mock.close_session(old)  # Twitch closes the old connection
        # "after" follows the redelivery on the same socket: once it is in, the redelivery
        # has been handled too.
        await eventually(lambda: {"after", "other"} <= {m for m, _ in h.chat()}, 20, "all messages")
        await h.old_socket_gone(connections=connections + 1)
        ids = [m for m, _ in h.chat()]
        assert ids[:3] == ["gap-0", "gap-1", "gap-2"]  # shard 0's socket, in order
        assert sorted(ids[3:]) == ["after", "other"]  # shard 0's new socket and shard 1's
        assert h.source.duplicates == 1
        assert h.mock.connections == connections + 1  # no extra reconnect after the close
        assert conduit.shards["1"] == other.id and not other.closed

        async def shard_zero() -> dict:
            debug = await wait_status(h.service, "/_debug/twitch", 200)
            return {s["id"]: s for s in debug["eventsub"]["conduit"]["shards"]}["0"]

        async def shard_zero_moved() -> bool:
            return (await shard_zero())["sessionId"] != old.id

        # The source re-points the shard on its next supervision round.
        await eventually(shard_zero_moved, 15, "shard 0 re-pointed by the source")
        shard = await shard_zero()
        assert shard["sessionId"] == new.id and shard["connected"] is True


async def test_a_dead_shard_socket_gets_a_fresh_session_on_the_same_conduit() -> None:
    async with eventsub_service(
        channels=tuple(CHANNELS),
        users=CHANNELS,
        scopes=("user:read:chat", "user:bot"),
        settings={"twitch_client_secret": SECRET},
        keepalive_s=1.0,
    ) as h:
        conduit = await conduit_ready(h)
        first = h.mock.shard_session(conduit, "1")
        first.silent = True  # no keepalives: the client must give up on it and reconnect
        await eventually(
            lambda: (
                conduit.shards["1"] != first.id
                and h.mock.shard_session(conduit, "1").welcomed.is_set()
            ),
            30,
            "shard 1 pointed at a fresh session",
        )
        fresh = h.mock.shard_session(conduit, "1")
        assert fresh.reconnected_from == ""  # a new connection, not a reconnect_url
        await h.mock.notify_conduit(
            MESSAGE, CHANNELS["chan01"], ev.chat_message(room("chan01"), "x-1", [ev.text("x")])
        )
        await eventually(lambda: h.chat() == [("x-1", "x")], 15, "message after the new shard")
        assert len(h.mock.conduits) == 1  # reused, never a second conduit
        assert len([s for s in h.mock.subscriptions.values() if s.conduit_id]) == 360
