"""The simulator as Twitch for a sending bot, over real sockets on 127.0.0.1.

A bot and an anonymous reader connect over TCP; the referee's clock is a fake one the test
steps, so "within a second" and "30 s later" are exact and nothing waits on real time.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from ingress_egress.protocol import parse_line
from ingress_egress.simulator import BotAccount, ChatRules, ChatSimulator, room_id_for
from ingress_egress.simulator import cli as sim_cli
from ingress_egress.simulator.rules import LIMIT_VERIFIED
from ingress_egress.twitch.messages import Privmsg, from_irc
from tests.support.irc_client import IrcClient

pytestmark = pytest.mark.timeout(60)

BOT = BotAccount("bot", "555", "tok")
LOCKOUT_S = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


SimFactory = Callable[..., Awaitable[ChatSimulator]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_sim(clock: FakeClock) -> AsyncIterator[SimFactory]:
    sims: list[ChatSimulator] = []

    async def factory(**kwargs: Any) -> ChatSimulator:
        options: dict[str, Any] = {"count": 0, "bots": [BOT], "lockout_s": LOCKOUT_S}
        sim = ChatSimulator(clock=clock, **(options | kwargs))
        await sim.start()
        sims.append(sim)
        return sim

    yield factory
    for sim in sims:
        await sim.stop()


async def bot_client(sim: ChatSimulator, *channels: str) -> IrcClient:
    client = await IrcClient.open(sim.port)
    await client.login_bot(BOT.login, BOT.token)
    if channels:
        await client.join(*channels)
    return client


async def reader(sim: ChatSimulator, *channels: str) -> IrcClient:
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join(*channels)
    return client


async def say(client: IrcClient, channel: str, text: str) -> list[str]:
    """Send a PRIVMSG; what the server answered before a PING barrier."""
    await client.send(f"PRIVMSG #{channel} :{text}")
    return await client.barrier()


# -- login and USERSTATE ---------------------------------------------------------------------


async def test_a_known_token_logs_in_and_gets_globaluserstate(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = await IrcClient.open(sim.port)
    lines = await client.login_bot("Bot", "tok")
    assert lines[0] == ":tmi.twitch.tv 001 bot :Welcome, GLHF!"
    assert lines[-1] == (
        "@badge-info=;badges=;color=;display-name=bot;emote-sets=0;user-id=555;user-type= "
        ":tmi.twitch.tv GLOBALUSERSTATE"
    )
    client.close()


@pytest.mark.parametrize(("nick", "token"), [("bot", "wrong"), ("other", "tok")])
async def test_a_bad_token_fails_authentication_and_closes(
    make_sim: SimFactory, nick: str, token: str
) -> None:
    sim = await make_sim()
    client = await IrcClient.open(sim.port)
    await client.send(f"PASS oauth:{token}", f"NICK {nick}")
    assert await client.rest() == b":tmi.twitch.tv NOTICE * :Login authentication failed\r\n"


@pytest.mark.parametrize(
    ("role", "tags"),
    [
        ("none", "badges=;color=;display-name=bot;emote-sets=0;mod=0;subscriber=0;user-type="),
        (
            "moderator",
            "badges=moderator/1;color=;display-name=bot;emote-sets=0;mod=1;subscriber=0;"
            "user-type=mod",
        ),
        (
            "vip",
            "badges=vip/1;color=;display-name=bot;emote-sets=0;mod=0;subscriber=0;user-type=;vip=1",
        ),
        (
            "broadcaster",
            "badges=broadcaster/1;color=;display-name=bot;emote-sets=0;mod=0;subscriber=0;"
            "user-type=",
        ),
    ],
)
async def test_userstate_after_join_shows_the_bots_role(
    make_sim: SimFactory, role: str, tags: str
) -> None:
    sim = await make_sim()
    sim.set_channel("chan", role=role, slow=5)
    client = await bot_client(sim)
    await client.send("JOIN #chan")
    lines = await client.recv_until(lambda line: "ROOMSTATE" in line)
    assert lines[-2] == f"@badge-info=;{tags} :tmi.twitch.tv USERSTATE #chan"
    assert f"room-id={room_id_for('chan')};slow=5;" in lines[-1]
    client.close()


# -- a taken message --------------------------------------------------------------------------


async def test_a_taken_message_is_relayed_with_the_id_its_userstate_carries(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim()
    sim.set_channel("chan", role="moderator")
    bot = await bot_client(sim, "chan")
    second = await bot_client(sim, "chan")  # the bot's own other connection
    viewer = await reader(sim, "chan")
    answer = await say(bot, "chan", "hello Kappa")
    assert len(answer) == 1
    userstate = parse_line(answer[0])
    assert userstate.command == "USERSTATE" and userstate.params == ["#chan"]
    sent_id = userstate.tags["id"]
    assert (userstate.tags["mod"], userstate.tags["badges"]) == ("1", "moderator/1")
    for client in (viewer, second):
        (line,) = await client.barrier()
        relayed = parse_line(line)
        assert relayed.command == "PRIVMSG" and relayed.params == ["#chan", "hello Kappa"]
        assert relayed.prefix == "bot!bot@bot.tmi.twitch.tv"
        tags = relayed.tags
        assert tags["id"] == sent_id
        assert (tags["user-id"], tags["room-id"], tags["display-name"]) == (
            "555",
            room_id_for("chan"),
            "bot",
        )
        assert tags["tmi-sent-ts"].isdigit() and tags["emotes"] == "25:6-10"
        assert (tags["badges"], tags["mod"], tags["user-type"]) == ("moderator/1", "1", "mod")
        message = from_irc(relayed)
        assert isinstance(message, Privmsg) and message.chatter.user_id == "555"
    record = sim.bot_sends[-1]
    assert (record.channel, record.text, record.id, record.outcome, record.via) == (
        "chan",
        "hello Kappa",
        sent_id,
        "accepted",
        "irc",
    )
    for client in (bot, second, viewer):
        client.close()


@pytest.mark.parametrize("text", ["\x01ACTION waves\x01", "/me waves"])
async def test_an_action_is_relayed_as_an_action(make_sim: SimFactory, text: str) -> None:
    sim = await make_sim()
    bot = await bot_client(sim, "chan")
    viewer = await reader(sim, "chan")
    await say(bot, "chan", text)
    (line,) = await viewer.barrier()
    assert parse_line(line).params == ["#chan", "\x01ACTION waves\x01"]
    assert sim.command_attempts == []
    bot.close()
    viewer.close()


# -- refusals: NOTICE msg-id as Twitch sends it -----------------------------------------------

REFUSALS = [
    ({"banned": True}, ["hi"], "msg_banned", "You are permanently banned from talking in chan."),
    (
        {"suspended": True},
        ["hi"],
        "msg_channel_suspended",
        "This channel does not exist or has been suspended.",
    ),
    (
        {"followers_only": 10},
        ["hi"],
        "msg_followersonly",
        "This room is in 10 minutes followers-only mode. Follow chan to join the community!",
    ),
    (
        {"followers_only": 0},
        ["hi"],
        "msg_followersonly_zero",
        "This room is in followers-only mode. Follow chan to join the community!",
    ),
    ({"subs_only": True}, ["hi"], "msg_subsonly", None),
    ({"emote_only": True}, ["hi Kappa"], "msg_emoteonly", None),
    (
        {"slow": 30},
        ["one", "two"],
        "msg_slowmode",
        "This room is in slow mode and you are sending messages too quickly. "
        "You will be able to talk again in 30 seconds.",
    ),
    (
        {},
        ["one", "two"],
        "msg_ratelimit",
        "Your message was not sent because you are sending messages too quickly.",
    ),
    ({}, ["/ban someone"], "unrecognized_cmd", "Unrecognized command: /ban"),
    ({}, ["  .timeout someone 10"], "unrecognized_cmd", "Unrecognized command: .timeout"),
]


@pytest.mark.parametrize(
    ("settings", "texts", "msg_id", "notice"),
    REFUSALS,
    ids=[f"{r[2]}-{i}" for i, r in enumerate(REFUSALS)],
)
async def test_refusals_answer_a_notice_with_twitchs_msg_id(
    make_sim: SimFactory,
    settings: dict[str, Any],
    texts: list[str],
    msg_id: str,
    notice: str | None,
) -> None:
    sim = await make_sim()
    sim.set_channel("chan", **settings)
    bot = await bot_client(sim)
    viewer = await reader(sim, "chan") if not settings.get("suspended") else None
    for text in texts[:-1]:
        assert "USERSTATE" in (await say(bot, "chan", text))[0]
    (line,) = await say(bot, "chan", texts[-1])
    answer = parse_line(line)
    assert (answer.command, answer.params[0], answer.tags) == (
        "NOTICE",
        "#chan",
        {"msg-id": msg_id},
    )
    if notice is not None:
        assert answer.params[1] == notice
    assert sim.bot_sends[-1].outcome == msg_id and sim.bot_sends[-1].id == ""
    if viewer is not None:
        assert len(await viewer.barrier()) == len(texts) - 1  # the refused one never shows
        viewer.close()
    bot.close()


async def test_rate_limit_and_slow_mode_refusals_are_recorded_as_breaches(
    make_sim: SimFactory, clock: FakeClock
) -> None:
    sim = await make_sim()
    sim.set_channel("slow", slow=3)
    bot = await bot_client(sim)
    await say(bot, "fast", "a")
    clock.advance(0.999)
    assert "msg_ratelimit" in (await say(bot, "fast", "b"))[0]
    clock.advance(0.001)
    assert "USERSTATE" in (await say(bot, "fast", "b"))[0]  # exactly 1 s later: fine
    await say(bot, "slow", "a")
    clock.advance(2.5)
    (notice,) = await say(bot, "slow", "b")
    assert "msg_slowmode" in notice and notice.endswith("talk again in 1 seconds.")
    clock.advance(0.5)
    assert "USERSTATE" in (await say(bot, "slow", "b"))[0]
    assert [(b.channel, b.limit) for b in sim.breaches] == [
        ("fast", "channel_1s"),
        ("slow", "slow"),
    ]
    bot.close()


async def test_duplicates_within_30_s_are_refused_unless_privileged(
    make_sim: SimFactory, clock: FakeClock
) -> None:
    sim = await make_sim()
    sim.set_channel("modded", role="moderator")
    bot = await bot_client(sim)

    async def outcome(channel: str, text: str) -> str:
        clock.advance(1.0)
        (line,) = await say(bot, channel, text)
        return parse_line(line).tags.get("msg-id", "taken")

    assert await outcome("chan", "same") == "taken"
    assert await outcome("chan", "  same ") == "msg_duplicate"
    assert await outcome("chan", "same \U000e0000") == "msg_duplicate"  # Twitch strips it
    assert await outcome("chan", "same \u034f") == "taken"  # this one makes it distinct
    assert await outcome("chan", "same") == "taken"  # differs from the previous one
    clock.advance(29.0)
    assert await outcome("chan", "same") == "taken"  # 30 s after the last identical one
    assert await outcome("modded", "again") == "taken"
    assert await outcome("modded", "again") == "taken"
    assert sim.breaches == []
    bot.close()


async def test_a_command_attempt_is_recorded_and_a_cgj_makes_it_plain_text(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim()
    bot = await bot_client(sim)
    viewer = await reader(sim, "chan")
    await say(bot, "chan", "/ban someone")
    assert [(c.channel, c.text) for c in sim.command_attempts] == [("chan", "/ban someone")]
    assert "USERSTATE" in (await say(bot, "chan", "\u034f/ban someone"))[0]
    (line,) = await viewer.barrier()
    assert parse_line(line).params[1] == "\u034f/ban someone"
    assert len(sim.command_attempts) == 1
    bot.close()
    viewer.close()


async def test_over_500_code_points_is_dropped_silently(make_sim: SimFactory) -> None:
    sim = await make_sim()
    bot = await bot_client(sim)
    viewer = await reader(sim, "chan")
    assert await say(bot, "chan", "\U0001f600" * 501) == []
    assert sim.bot_sends[-1].outcome == "too_long"
    await say(bot, "other", "\U0001f600" * 500)
    assert sim.bot_sends[-1].outcome == "accepted"  # 500 code points (2,000 bytes) is fine
    assert await viewer.barrier() == []
    bot.close()
    viewer.close()


async def test_a_crlf_in_a_privmsg_arrives_as_a_second_command_and_is_recorded(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim()
    bot = await bot_client(sim)
    await bot.send_raw(b"PRIVMSG #chan :hello\r\nWHOOPS #chan :injected\r\n")
    lines = await bot.barrier()
    assert lines[-1] == ":tmi.twitch.tv 421 bot WHOOPS :Unknown command"
    await bot.send_raw(b"PRIVMSG #other :bare\rOOPS cr\r\n")  # a CR alone ends a line too
    assert (await bot.barrier())[-1] == ":tmi.twitch.tv 421 bot OOPS :Unknown command"
    assert [i.line for i in sim.injections] == ["WHOOPS #chan :injected", "OOPS cr"]
    assert [s.text for s in sim.bot_sends] == ["hello", "bare"]
    bot.close()


# -- the 30 s window and the lockout ----------------------------------------------------------


async def test_the_21st_message_in_30_s_is_a_breach_and_the_bot_is_then_ignored(
    make_sim: SimFactory, clock: FakeClock
) -> None:
    sim = await make_sim()
    sim.set_channel("modded", role="moderator")
    bot = await bot_client(sim)
    viewer = await reader(sim, "late", "modded")
    for i in range(20):
        assert "USERSTATE" in (await say(bot, f"ch{i}", "hi"))[0]
        clock.advance(0.1)
    assert await say(bot, "ch20", "hi") == []  # the breach: dropped silently
    assert [(b.channel, b.limit) for b in sim.breaches] == [("ch20", "window_20")]
    clock.advance(29.0)  # still locked out, though the window has room again
    assert await say(bot, "late", "hi") == []
    assert await viewer.barrier() == []
    assert "USERSTATE" in (await say(bot, "modded", "still heard"))[0]  # privileged: not
    assert len(await viewer.barrier()) == 1
    clock.advance(LOCKOUT_S)
    assert "USERSTATE" in (await say(bot, "late", "back"))[0]
    outcomes = [s.outcome for s in sim.bot_sends]
    assert outcomes == ["accepted"] * 20 + ["ignored", "ignored", "accepted", "accepted"]
    bot.close()
    viewer.close()


async def test_privileged_messages_count_towards_the_20_and_stop_at_100(
    make_sim: SimFactory, clock: FakeClock
) -> None:
    sim = await make_sim()
    sim.set_channel("modded", role="moderator")
    bot = await bot_client(sim)
    for _ in range(20):
        await bot.send("PRIVMSG #modded :burst")
    assert len(await bot.barrier()) == 20
    assert await say(bot, "plain", "hi") == []  # 20 already in the window
    assert [b.limit for b in sim.breaches] == ["window_20"]
    for _ in range(79):
        await bot.send("PRIVMSG #modded :burst")
    assert len(await bot.barrier()) == 79  # privileged: on up to 100
    assert await say(bot, "modded", "one too many") == []
    assert [b.limit for b in sim.breaches] == ["window_20", "window_100"]
    bot.close()


def test_a_verified_bot_may_send_7500_in_30_s() -> None:
    clock = FakeClock()
    account = BotAccount("big", "1", "t", verified=True)
    rules = ChatRules([account], clock=clock)
    for i in range(LIMIT_VERIFIED):
        assert rules.judge(account, f"c{i % 5000}", f"m{i}").accepted
        clock.advance(0.001)
    assert rules.judge(account, "other", "x").outcome == "ignored"
    assert [b.limit for b in rules.breaches] == ["window_verified"]


def test_the_window_rolls_exactly_at_30_s() -> None:
    clock = FakeClock()
    rules = ChatRules([BOT], clock=clock, lockout_s=0.0)
    for i in range(20):
        assert rules.judge(BOT, f"c{i}", "x").accepted
    clock.advance(29.999)
    assert rules.judge(BOT, "late", "x").outcome == "ignored"
    clock.advance(0.001)  # 30 s after the first 20: they have left the window
    assert rules.judge(BOT, "later", "x").accepted


# -- live mode viewers say !ping ----------------------------------------------------------------


async def test_live_viewers_say_ping_now_and_then() -> None:
    async with ChatSimulator(live_channels=("alpha",), rate=600, viewer_pings_every=3) as sim:
        await sim.wait_until(lambda: sim.live_count >= 12)
        sim.stop_live()
    pings = [parse_line(m.line) for m in sim.live_log if m.line.endswith(" :!ping")]
    assert len(pings) >= 4
    for line in pings:
        message = from_irc(line)
        assert isinstance(message, Privmsg) and message.text == "!ping"
        assert line.tags["room-id"] == room_id_for("alpha")


def test_cli_sending_options_build_the_simulator() -> None:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    args = parser.parse_args(
        [
            *("--count", "0", "--bot", "bot:555:tok", "--bot", "big:1:t2:verified"),
            *("--lockout", "5", "--channel", "chan:role=moderator,slow=3,subs-only=true"),
            *("--control-port", "0", "--helix-port", "0", "--helix-client-id", "cid"),
            *("--helix-points", "50"),
        ]
    )
    sim = sim_cli.build_simulator(args)
    assert sim.rules.accounts == {"bot": BOT, "big": BotAccount("big", "1", "t2", verified=True)}
    assert sim.rules.lockout_s == 5
    settings = sim.channel_settings("chan")
    assert (settings.role, settings.slow, settings.subs_only) == ("moderator", 3, True)
    assert (sim.control_port, sim.helix_port, sim.helix_client_id) == (0, 0, "cid")
    assert sim.helix_points_per_minute == 50
    assert sim_cli.build_simulator(parser.parse_args([])).viewer_pings_every is None
    live = parser.parse_args(["--live", "a", "--rate", "5"])
    assert sim_cli.build_simulator(live).viewer_pings_every == sim_cli.DEFAULT_VIEWER_PINGS_EVERY
    quiet = parser.parse_args(["--live", "a", "--rate", "5", "--viewer-pings-every", "0"])
    assert sim_cli.build_simulator(quiet).viewer_pings_every is None
    for bad in (["--bot", "nocolons"], ["--channel", "chan:role=king"], ["--channel", "chan"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


async def test_the_default_stream_mixes_in_pings_only_when_asked() -> None:
    async with ChatSimulator(count=40, viewer_pings_every=10) as sim:
        viewer = await reader(sim, "alpha")
        lines = await viewer.recv_n(40)
        viewer.close()
    texts = [parse_line(line).param(1) for line in lines]
    assert [i for i, text in enumerate(texts) if text == "!ping"] == [9, 19, 29, 39]
    assert [text for _, text in sim.sent["alpha"]] == texts
    async with ChatSimulator(count=40) as plain:
        viewer = await reader(plain, "alpha")
        assert "!ping" not in [parse_line(line).param(1) for line in await viewer.recv_n(40)]
        viewer.close()


async def test_a_mode_change_is_announced_with_a_partial_roomstate(make_sim: SimFactory) -> None:
    sim = await make_sim()
    bot = await bot_client(sim, "chan")
    viewer = await reader(sim, "chan")
    sim.set_channel("chan", slow=10, subs_only=True)
    expected = f"@room-id={room_id_for('chan')};slow=10;subs-only=1 :tmi.twitch.tv ROOMSTATE #chan"
    assert await bot.recv() == expected
    assert await viewer.recv() == expected
    sim.set_channel("chan", role="moderator")  # a role shows in the next USERSTATE instead
    sim.set_channel("chan", slow=10)  # no change, nothing to announce
    assert await bot.barrier() == []
    (userstate,) = await say(bot, "chan", "hi")
    assert parse_line(userstate).tags["mod"] == "1"
    bot.close()
    viewer.close()
