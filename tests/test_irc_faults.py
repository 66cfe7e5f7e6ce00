"""The chat pool under Twitch's faults, over real sockets to the simulator.

Each test asserts what the service delivered against what the simulator sent: nothing lost,
nothing duplicated.
"""

from __future__ import annotations

import time

import pytest

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings
from ingress_egress.credentials import StaticTokenProvider
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.simulator import ChatSimulator, Faults
from ingress_egress.sources.irc.codec import make_codec
from ingress_egress.sources.irc.dedup import first_copies
from ingress_egress.sources.irc.pool import PoolLimits
from ingress_egress.sources.recent import RecentKeys
from tests.support.delivery import published_chat_ids, sent_ids
from tests.support.service import eventually, running, settings_for, wait_status

pytestmark = pytest.mark.timeout(120)
BASE = Settings.defaults(message_bus_driver="memory", irc_connect_interval_ms=20)


async def all_chat_published(publisher: MemoryPublisher, sim: ChatSimulator) -> None:
    """Wait until as many chat messages were published as the simulator sent (ROOMSTATEs
    and other events are published too, so the plain publish count would not do)."""

    def count() -> int:
        return sum(1 for m in publisher.messages if m.type == "external.chat.message.v1")

    await eventually(lambda: count() >= sim.sent_count, 30, "every chat message published")


def assert_exactly_once(publisher: MemoryPublisher, sim: ChatSimulator) -> None:
    got = published_chat_ids(publisher)
    for channel, ids in got.items():
        assert len(ids) == len(set(ids)), f"duplicates in #{channel}"
    expected = sent_ids(sim)
    assert {c: len(v) for c, v in got.items()} == {c: len(v) for c, v in expected.items()}
    assert got == expected


async def test_reconnect_mid_stream_overlaps_and_loses_nothing_duplicates_nothing() -> None:
    # Twitch keeps sending on the old connection after RECONNECT; the client opens and joins
    # a replacement first, reads both, drops the copies and QUITs the old one itself (long
    # before the server's own close, 30 s later).
    faults = Faults(
        reconnect_after=300, apply_to_first=1, reconnect_overlap=True, reconnect_close_delay=30
    )
    channels = ("one", "two", "three")
    async with ChatSimulator(count=3000, rate=1500, faults=faults) as sim:
        publisher = MemoryPublisher()
        async with running(settings_for(BASE, sim.port, channels), publisher=publisher) as s:
            started = time.monotonic()
            await eventually(lambda: len(sim.joins) >= 6, 30, "rejoin")
            await eventually(lambda: sim.connections == 1, 20, "old connection retired")
            assert time.monotonic() - started < 25  # retired by the client, not the server
            assert await sim.wait_sent(3000, timeout=60)
            await all_chat_published(publisher, sim)
            assert s.state.reconnects == 1
            assert s.state.duplicates_dropped > 0  # the overlap really happened
            assert s.state.joined == set(channels)
            debug = await wait_status(s, "/_debug/twitch", 200)
            assert debug["pool"]["duplicatesDropped"] == s.state.duplicates_dropped
            assert [c["reconnects"] for c in debug["connections"]] == [1]
        assert sorted(ch for index, ch in sim.joins if index == 1) == sorted(channels)
    assert_exactly_once(publisher, sim)


async def test_tcp_drop_reconnects_and_rejoins_every_channel_of_that_connection() -> None:
    faults = Faults(drop_after=150, apply_to_first=1)
    channels = ("a1", "a2", "b1", "b2")
    async with ChatSimulator(count=800, rate=2000, faults=faults) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, channels, irc_channels_per_connection=2)
        async with running(settings, publisher=publisher) as s:
            assert await sim.wait_sent(800, timeout=60)
            await all_chat_published(publisher, sim)
            await eventually(lambda: s.state.joined == set(channels), 15, "all rejoined")
            assert s.state.reconnects == 1
            debug = await wait_status(s, "/_debug/twitch", 200)
            assert sorted(c["reconnects"] for c in debug["connections"]) == [0, 1]
            assert all(c["channels"] == 2 and c["connected"] for c in debug["connections"])
        # Connection 0 dropped; its replacement (index 2) joined exactly its two channels.
        first = sorted(ch for index, ch in sim.joins if index == 0)
        assert sorted(ch for index, ch in sim.joins if index == 2) == first
    assert_exactly_once(publisher, sim)


def test_default_keepalive_detects_a_half_open_connection_within_about_40_s() -> None:
    limits = PoolLimits()
    tick = min(1.0, limits.keepalive_idle_s / 4, limits.join_timeout_s / 4)
    # Worst case: idle period + PONG wait + one tick for each check.
    assert limits.keepalive_idle_s + limits.pong_timeout_s + 2 * tick <= 42


async def test_server_that_stops_answering_ping_is_detected_and_replaced() -> None:
    faults = Faults(no_pong=True)
    async with ChatSimulator(count=400, rate=400, faults=faults, ping_interval=None) as sim:
        sim.pause()
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("one",))
        async with running(
            settings, publisher=publisher, keepalive_idle_s=0.4, pong_timeout_s=0.4
        ) as s:
            await eventually(lambda: s.state.connected, 10, "connected")
            quiet_since = time.monotonic()
            await eventually(lambda: s.state.reconnects >= 1, 10, "keepalive reconnect")
            assert time.monotonic() - quiet_since < 5  # idle 0.4 + pong 0.4 + ticks
            assert "keepalive_timeout" in [e["code"] for e in s.errors.entries]
            faults.no_pong = False
            # What a server writes into a connection the client has declared dead is lost (as
            # with Twitch): resume the chat once the replacement has joined.
            await eventually(
                lambda: sim.connections == 1 and s.state.joined == {"one"}, 10, "rejoined"
            )
            sim.resume()
            assert await sim.wait_sent(400, timeout=30)
            await all_chat_published(publisher, sim)
    assert_exactly_once(publisher, sim)


async def test_rejected_login_backs_off_then_delivers_everything() -> None:
    faults = Faults(reject_login=True, apply_to_first=3)
    async with ChatSimulator(count=200, rate=1000, faults=faults) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("one", "two"), twitch_bot_username="mybot")
        credentials = StaticTokenProvider("mybot", "tok_secret_abcdef0123456789")
        async with running(settings, publisher=publisher, credentials=credentials) as s:
            assert await sim.wait_sent(200, timeout=30)
            await all_chat_published(publisher, sim)
            codes = [e["code"] for e in s.errors.entries]
            assert codes.count("login_failed") == 3
            assert s.state.reconnects == 3
            debug = await wait_status(s, "/_debug/twitch", 200)
            assert "tok_secret" not in str(debug)
    assert_exactly_once(publisher, sim)


async def test_suspended_channel_is_failed_with_reason_retried_and_recovers() -> None:
    faults = Faults(suspended_channels={"gone"})
    async with ChatSimulator(count=2000, rate=400, faults=faults) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("gone", "live"), irc_failed_channel_retry_ms=300)
        async with running(settings, publisher=publisher, keepalive_idle_s=0.8) as s:
            body = await wait_status(s, "/readyz", 503)
            await eventually(lambda: "gone" in s.state.failed_channels, 10, "failure")
            body = await wait_status(s, "/readyz", 503)
            assert any("gone (msg_channel_suspended)" in r for r in body["reasons"])
            debug = await wait_status(s, "/_debug/twitch", 200)
            assert debug["failedChannels"] == {"gone": "msg_channel_suspended"}
            assert debug["joinedChannels"] == ["live"]
            # Retried slowly, on the same connection, without disturbing "live".
            await eventually(lambda: [c for _, c in sim.joins].count("gone") >= 3, 10, "retries")
            assert s.state.reconnects == 0
            faults.suspended_channels.clear()  # the channel is back
            await eventually(lambda: s.state.joined == {"gone", "live"}, 10, "recovered")
            assert s.state.failed_channels == {}
            await wait_status(s, "/readyz", 200)
            assert await sim.wait_sent(2000, timeout=30)
            await all_chat_published(publisher, sim)
    assert "gone" in sim.sent and "live" in sim.sent
    assert_exactly_once(publisher, sim)


async def test_unconfirmed_join_is_retried_through_the_limiter() -> None:
    faults = Faults(ignored_joins={"quiet"})
    async with ChatSimulator(count=0, faults=faults) as sim:
        settings = settings_for(BASE, sim.port, ("quiet", "loud"), irc_join_timeout_ms=300)
        async with running(settings, publisher=MemoryPublisher()) as s:
            await eventually(lambda: "loud" in s.state.joined, 10, "loud joined")
            await eventually(lambda: [c for _, c in sim.joins].count("quiet") >= 2, 10, "retry")
            assert s.state.pending == ["quiet"]
            body = await wait_status(s, "/readyz", 503)
            assert any("not joined yet: quiet" in r for r in body["reasons"])
            faults.ignored_joins.clear()
            await eventually(lambda: s.state.joined == {"quiet", "loud"}, 10, "confirmed")
            assert s.state.reconnects == 0
            assert "join_timeout" in [e["code"] for e in s.errors.entries]


def test_overlap_duplicates_are_dropped_by_the_envelopes_dedup_id() -> None:
    privmsg = "@id=abc;room-id=1;tmi-sent-ts=1 :u!u@u.tmi.twitch.tv PRIVMSG #c :hi"
    clear = "@room-id=1;tmi-sent-ts=5 :tmi.twitch.tv CLEARCHAT #c :bad"
    other_clear = "@room-id=1;tmi-sent-ts=6 :tmi.twitch.tv CLEARCHAT #c :bad"
    # The same lines read on two connections (two reads, as in a RECONNECT overlap) ...
    first = make_codec(EnvelopeBuilder()).decode([privmsg, clear, "PING :x"], 1.7e9)
    second = make_codec(EnvelopeBuilder()).decode([privmsg, clear, other_clear], 1.7e9)
    assert first.envelopes[0].dedup_id == "abc"
    seen = RecentKeys(capacity=100)
    assert len(first_copies(seen, first.envelopes)) == 2  # PING makes no envelope
    # ... count once; a different event (another timestamp) is new.
    kept = first_copies(seen, second.envelopes)
    assert [m.dedup_id for m in kept] == [second.envelopes[2].dedup_id]
    recent = RecentKeys(capacity=3)
    assert [recent.first_time(k) for k in ("a", "b", "a", "c", "d", "a")] == [
        True,
        True,
        False,
        True,
        True,
        True,  # "a" was the oldest and has been forgotten: the set never outgrows 3
    ]
    assert len(recent) == 3
