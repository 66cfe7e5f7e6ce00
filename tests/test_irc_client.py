"""The Twitch IRC client against the simulator over real sockets, with its fault switches.

Each test checks what the service delivered against what the simulator sent.
"""

from __future__ import annotations

import os
import re

import pytest

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings, parse_irc_url, pure_python
from ingress_egress.credentials import StaticTokenProvider
from ingress_egress.simulator import ChatSimulator, Faults
from ingress_egress.sources.irc.client import JoinLimiter, join_lines
from tests.support.delivery import published_chat_ids, sent_ids
from tests.support.service import eventually, running, settings_for, wait_status

pytestmark = pytest.mark.timeout(120)
BASE = Settings.defaults(message_bus_driver="memory")


async def test_anonymous_login_joins_and_answers_ping() -> None:
    async with ChatSimulator(count=200, rate=1000, ping_interval=0.2) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("one", "two"))
        async with running(settings, publisher=publisher) as service:
            await wait_status(service, "/readyz", 200)
            assert await sim.wait_sent(200, timeout=30)
            await eventually(lambda: service.counters.published >= 202, what="publishes")
            await eventually(lambda: len(sim.pongs) >= 2, what="PONGs to server PINGs")
        assert re.fullmatch(r"justinfan\d+", sim.logins[0])
        assert sorted(channel for _, channel in sim.joins) == ["one", "two"]
        assert published_chat_ids(publisher) == sent_ids(sim)
        assert service.state.reconnects == 0


@pytest.mark.parametrize(
    "faults",
    [Faults(reconnect_after=120, apply_to_first=1), Faults(drop_after=120, apply_to_first=1)],
    ids=["RECONNECT", "tcp-drop"],
)
async def test_reconnects_and_rejoins_without_losing_what_was_sent(faults: Faults) -> None:
    async with ChatSimulator(count=400, rate=2000, faults=faults) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("one", "two", "three"))
        async with running(settings, publisher=publisher) as service:
            assert await sim.wait_sent(400, timeout=60)
            await eventually(lambda: service.counters.published >= 400, what="publishes")
            assert service.state.reconnects == 1
            assert service.state.joined == {"one", "two", "three"}
            debug = await wait_status(service, "/_debug/twitch", 200)
            assert debug["lastReconnectAt"] is not None
            assert debug["reconnects"] == 1
        # Every channel was joined again on the second connection.
        assert sorted(ch for index, ch in sim.joins if index == 1) == ["one", "three", "two"]
        assert published_chat_ids(publisher) == sent_ids(sim)


async def test_dead_connection_is_detected_by_keepalive() -> None:
    async with ChatSimulator(count=0, faults=Faults(no_pong=True)) as sim:
        settings = settings_for(BASE, sim.port, ("one",))
        publisher = MemoryPublisher()
        async with running(
            settings, publisher=publisher, keepalive_idle_s=0.3, pong_timeout_s=0.3
        ) as service:
            await eventually(lambda: service.state.reconnects >= 1, 10, "keepalive reconnect")
            codes = [entry["code"] for entry in service.errors.entries]
            assert "keepalive_timeout" in codes


async def test_rejected_login_backs_off_and_is_reported() -> None:
    token = "tok_canary_0123456789abcdef"
    async with ChatSimulator(count=0, faults=Faults(reject_login=True, apply_to_first=2)) as sim:
        settings = settings_for(BASE, sim.port, ("one",), twitch_bot_username="mybot")
        credentials = StaticTokenProvider("mybot", token)
        async with running(settings, publisher=MemoryPublisher(), credentials=credentials) as s:
            await eventually(lambda: s.state.logged_in, 20, "login after two rejections")
            codes = [entry["code"] for entry in s.errors.entries]
            assert codes.count("login_failed") == 2
            assert sim.logins[:3] == ["mybot", "mybot", "mybot"]
            debug = await wait_status(s, "/_debug/twitch", 200)
            assert debug["identity"] == "mybot"
            assert token not in str(debug)


async def test_suspended_channel_is_reported_and_others_keep_flowing() -> None:
    faults = Faults(suspended_channels={"gone"})
    async with ChatSimulator(count=50, rate=500, faults=faults) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("gone", "live"))
        async with running(settings, publisher=publisher) as service:
            assert await sim.wait_sent(50, timeout=30)
            await eventually(lambda: service.counters.published >= 51, what="publishes")
            body = await wait_status(service, "/readyz", 503)
            assert any("gone (msg_channel_suspended)" in r for r in body["reasons"])
            debug = await wait_status(service, "/_debug/twitch", 200)
            assert debug["failedChannels"] == {"gone": "msg_channel_suspended"}
            assert debug["joinedChannels"] == ["live"]
        assert published_chat_ids(publisher) == sent_ids(sim)


async def test_malformed_lines_are_counted_and_never_stop_the_read_loop() -> None:
    good = (
        "@badges=;color=;display-name=A;emotes=;id=aaaaaaaa-0000-4000-8000-000000000001;"
        "mod=0;room-id=5;subscriber=0;tmi-sent-ts=1700000000000;user-id=9 "
        ":a!a@a.tmi.twitch.tv PRIVMSG #one :before"
    )
    lines = [
        good,
        "@only=tags-no-command",
        ":prefix-only",
        good.replace("0001", "0002").replace("before", "after"),
    ]
    async with ChatSimulator(replay_lines=lines) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("one",))
        async with running(settings, publisher=publisher) as service:
            await eventually(lambda: service.counters.published >= 3, what="both good lines")
            assert service.counters.parse_errors == 2
            assert service.state.connected
        texts = [m.data for m in publisher.messages if m.type == "external.chat.message.v1"]
        assert [b"before" in t for t in texts] == [True, False]
        assert b"after" in texts[1]


def test_join_lines_respect_the_irc_line_limit() -> None:
    channels = [f"channel_{i:04d}_abcdefghij" for i in range(100)]
    lines = join_lines(channels)
    assert all(len(line.encode()) <= 510 for line in lines)
    assert [c.lstrip("#") for line in lines for c in line[5:].split(",")] == channels


def test_join_limiter_window() -> None:
    limiter = JoinLimiter(limit=20, window_s=10)
    assert limiter.available(0.0) == 20
    limiter.record(0.0, 15)
    limiter.record(5.0, 5)
    assert limiter.available(9.9) == 0
    assert limiter.wait_s(9.9) == pytest.approx(0.1)
    assert limiter.available(10.0) == 15


async def test_websocket_transport_delivers_the_same_messages() -> None:
    async with ChatSimulator(count=150, rate=1000, ws_port=0) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("one", "two"))
        settings = settings.replace(twitch_irc_url=parse_irc_url(f"ws://127.0.0.1:{sim.ws_port}"))
        async with running(settings, publisher=publisher) as service:
            await wait_status(service, "/readyz", 200)
            assert await sim.wait_sent(150, timeout=30)
            await eventually(lambda: service.counters.published >= 152, what="publishes")
            debug = await wait_status(service, "/_debug/twitch", 200)
            assert debug["endpoint"].startswith("ws://127.0.0.1:")
        assert published_chat_ids(publisher) == sent_ids(sim)


async def test_debug_reports_which_hot_path_runs() -> None:
    from ingress_egress import _native

    async with ChatSimulator(count=0) as sim:
        settings = settings_for(BASE, sim.port, ("one",))
        async with running(settings, publisher=MemoryPublisher()) as service:
            debug = await wait_status(service, "/_debug/twitch", 200)
            codec = service.codec
    # The native codec wherever the extension is loaded: never a silent fallback to Python.
    native = _native.speedups is not None and not pure_python(os.environ)
    assert codec is not None and codec.name == ("native" if native else "python")
    assert debug["hotPath"] == ("C (native codec)" if native else "pure Python")
