"""The local Twitch chat simulator over real sockets on 127.0.0.1.

No timing is asserted: waits are bounded only so that a broken simulator fails instead of
hanging, and "nothing more was sent" is checked with a PING sent as a barrier.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import irctokens
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ingress_egress.simulator import (
    EMOTES,
    ChatSimulator,
    Faults,
    TrafficGenerator,
    room_id_for,
    user_id_for,
)
from ingress_egress.simulator import cli as sim_cli
from tests.support.irc_client import (
    CAPS,
    READ_TIMEOUT,
    IrcClient,
    read_from_cli,
    start_simulator_cli,
)

pytestmark = pytest.mark.timeout(60)

EMOTE_NAMES = {emote_id: name for name, emote_id in EMOTES}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


SimFactory = Callable[..., Awaitable[ChatSimulator]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    sims: list[ChatSimulator] = []

    async def factory(**kwargs: Any) -> ChatSimulator:
        sim = ChatSimulator(**kwargs)
        await sim.start()
        sims.append(sim)
        return sim

    yield factory
    for sim in sims:
        await sim.stop()


def parse(line: str) -> irctokens.Line:
    return irctokens.tokenise(line)


def chat(lines: list[str]) -> list[irctokens.Line]:
    parsed = [parse(line) for line in lines]
    assert all(p.command == "PRIVMSG" for p in parsed), [p.command for p in parsed]
    return parsed


def by_channel(messages: list[irctokens.Line]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for msg in messages:
        assert msg.tags is not None
        out.setdefault(msg.params[0][1:], []).append((msg.tags["id"], msg.params[1]))
    return out


async def read_chat(client: IrcClient, n: int) -> list[irctokens.Line]:
    return chat(await client.recv_n(n))


# -- login, capabilities, JOIN ---------------------------------------------------------------


async def test_anonymous_login_and_join_sequences_are_exactly_twitchs(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(count=0)
    client = await IrcClient.open(sim.port)
    await client.send("CAP LS 302")
    assert await client.recv() == (
        ":tmi.twitch.tv CAP * LS :twitch.tv/membership twitch.tv/tags twitch.tv/commands"
    )
    await client.send("CAP REQ :twitch.tv/tags twitch.tv/commands", "CAP END")
    assert await client.recv() == ":tmi.twitch.tv CAP * ACK :twitch.tv/tags twitch.tv/commands"
    await client.send("PASS SCHMOOPIIE", "NICK justinfan4242")
    assert await client.recv_n(7) == [
        ":tmi.twitch.tv 001 justinfan4242 :Welcome, GLHF!",
        ":tmi.twitch.tv 002 justinfan4242 :Your host is tmi.twitch.tv",
        ":tmi.twitch.tv 003 justinfan4242 :This server is rather new",
        ":tmi.twitch.tv 004 justinfan4242 :-",
        ":tmi.twitch.tv 375 justinfan4242 :-",
        ":tmi.twitch.tv 372 justinfan4242 :You are in a maze of twisty passages, all alike.",
        ":tmi.twitch.tv 376 justinfan4242 :>",
    ]
    await client.send("JOIN #Alpha,#beta")
    expected: list[str] = []
    for channel in ("alpha", "beta"):
        expected += [
            f":justinfan4242!justinfan4242@justinfan4242.tmi.twitch.tv JOIN #{channel}",
            f":justinfan4242.tmi.twitch.tv 353 justinfan4242 = #{channel} :justinfan4242",
            f":justinfan4242.tmi.twitch.tv 366 justinfan4242 #{channel} :End of /NAMES list",
            "@badge-info=;badges=;color=;display-name=justinfan4242;emote-sets=0;mod=0;"
            f"subscriber=0;user-type= :tmi.twitch.tv USERSTATE #{channel}",
            f"@emote-only=0;followers-only=-1;r9k=0;room-id={room_id_for(channel)};slow=0;"
            f"subs-only=0 :tmi.twitch.tv ROOMSTATE #{channel}",
        ]
    assert await client.recv_n(len(expected)) == expected
    await client.send("PART #beta")
    assert await client.recv() == (
        ":justinfan4242!justinfan4242@justinfan4242.tmi.twitch.tv PART #beta"
    )
    assert await client.barrier() == []  # no GLOBALUSERSTATE or anything else for anonymous
    assert sim.logins == ["justinfan4242"]
    assert sim.joins == [(0, "alpha"), (0, "beta")]
    assert room_id_for("alpha") == room_id_for("#ALPHA") != room_id_for("beta")
    client.close()


async def test_authenticated_login_gets_globaluserstate(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0)
    client = await IrcClient.open(sim.port)
    await client.send(f"CAP REQ :{CAPS}", "PASS oauth:abc123", "NICK MyBot")
    assert await client.recv() == f":tmi.twitch.tv CAP * ACK :{CAPS}"
    welcome = await client.recv_n(8)
    assert welcome[0] == ":tmi.twitch.tv 001 mybot :Welcome, GLHF!"
    assert welcome[7] == (
        "@badge-info=;badges=;color=;display-name=mybot;emote-sets=0;"
        f"user-id={user_id_for('mybot')};user-type= :tmi.twitch.tv GLOBALUSERSTATE"
    )
    assert sim.logins == ["mybot"]
    client.close()


@pytest.mark.parametrize("password", [None, "PASS notoauth"], ids=["no-pass", "no-oauth-prefix"])
async def test_login_without_an_oauth_token_is_refused(
    make_sim: SimFactory, password: str | None
) -> None:
    sim = await make_sim(count=0)
    client = await IrcClient.open(sim.port)
    await client.send(*([password] if password else []), "NICK mybot")
    assert await client.rest() == b":tmi.twitch.tv NOTICE * :Improperly formatted auth\r\n"


async def test_cap_req_acks_exactly_what_was_asked_and_naks_unknown(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0)
    client = await IrcClient.open(sim.port)
    await client.send("CAP REQ :twitch.tv/commands")
    assert await client.recv() == ":tmi.twitch.tv CAP * ACK :twitch.tv/commands"
    await client.send("CAP REQ :twitch.tv/membership example.com/nope")
    assert await client.recv_n(2) == [
        ":tmi.twitch.tv CAP * ACK :twitch.tv/membership",
        ":tmi.twitch.tv CAP * NAK :example.com/nope",
    ]
    await client.send("NICK justinfan1")
    await client.recv_until(lambda line: " 376 " in line)
    # Without the tags capability USERSTATE/ROOMSTATE come without tags.
    await client.send("JOIN #gamma")
    lines = await client.recv_n(5)
    assert lines[3:] == [":tmi.twitch.tv USERSTATE #gamma", ":tmi.twitch.tv ROOMSTATE #gamma"]
    client.close()


async def test_chat_has_no_tags_without_the_tags_capability(make_sim: SimFactory) -> None:
    sim = await make_sim(count=20)
    client = await IrcClient.open(sim.port)
    await client.send("CAP REQ :twitch.tv/commands")
    await client.recv()
    await client.login(caps=None)
    await client.join("delta")
    lines = await client.recv_n(20)
    assert all(line.startswith(":") and " PRIVMSG #delta :" in line for line in lines)
    assert [parse(line).params[1] for line in lines] == [t for _, t in sim.sent["delta"]]
    client.close()


async def test_ping_pong_both_ways(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0, ping_interval=0.05)
    client = await IrcClient.open(sim.port)
    await client.send("PING :before-login")
    assert await client.recv() == ":tmi.twitch.tv PONG tmi.twitch.tv :before-login"
    await client.login()
    await client.send("PING :tmi.twitch.tv")
    assert await client.recv() == ":tmi.twitch.tv PONG tmi.twitch.tv :tmi.twitch.tv"
    assert await client.recv() == "PING :tmi.twitch.tv"  # the server's keepalive
    await client.send("PONG :tmi.twitch.tv")
    await sim.wait_until(lambda: sim.pongs == [(0, "tmi.twitch.tv")])
    client.close()


async def test_unknown_command_gets_421(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0)
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.send("WHO #foo")
    assert await client.recv() == ":tmi.twitch.tv 421 justinfan123 WHO :Unknown command"
    client.close()


async def test_commands_before_login_disconnect(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0)
    client = await IrcClient.open(sim.port)
    await client.send("JOIN #foo")
    assert await client.rest() == b""
    assert sim.joins == []
    await sim.wait_until(lambda: sim.connections == 0)


async def test_split_packets_and_several_commands_per_write(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0)
    client = await IrcClient.open(sim.port)
    data = b"CAP REQ :twitch.tv/tags twitch.tv/commands\r\nPASS x\r\nNICK justinfan7\r\nJOIN #ab\n"
    for i in range(0, len(data), 3):  # three bytes at a time, lines split anywhere
        await client.send_raw(data[i : i + 3])
        await asyncio.sleep(0)
    assert await client.recv() == f":tmi.twitch.tv CAP * ACK :{CAPS}"
    await client.recv_until(lambda line: " 376 " in line)
    assert (await client.recv()).endswith(" JOIN #ab")
    # Several commands in one write, the last one unterminated until the next write.
    await client.send_raw(b"PING :one\r\nPING :two\r\nPING :thr")
    await client.send_raw(b"ee\r\n")
    lines = await client.recv_until(lambda line: line.endswith(":three"))
    assert [line for line in lines if " PONG " in line] == [
        ":tmi.twitch.tv PONG tmi.twitch.tv :one",
        ":tmi.twitch.tv PONG tmi.twitch.tv :two",
        ":tmi.twitch.tv PONG tmi.twitch.tv :three",
    ]
    client.close()


# -- traffic -----------------------------------------------------------------------------------


async def test_count_is_respected_and_sent_matches_what_the_client_read(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(count=300, seed=7, batch_size=64)
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join("one", "two")
    messages = await read_chat(client, 300)
    assert await sim.wait_sent(300)
    assert await client.barrier() == []  # nothing after the 300th message
    assert sim.sent_count == 300 and sim.finished
    assert by_channel(messages) == sim.sent
    assert [len(v) for v in sim.sent.values()] == [150, 150]  # round-robin
    ids = [m.tags["id"] for m in messages if m.tags]
    assert len(set(ids)) == 300 and all(UUID_RE.match(i) for i in ids)
    client.close()


async def test_prebuilt_stream_is_the_same_traffic_as_generated_on_the_fly(
    make_sim: SimFactory,
) -> None:
    """The benchmark's prebuilt mode changes when lines are made, not what is sent."""
    streams = []
    for prebuilt in (False, True):
        sim = await make_sim(count=300, seed=7, batch_size=64, prebuilt=prebuilt)
        assert sim.prebuilt is prebuilt
        client = await IrcClient.open(sim.port)
        await client.login()
        await client.join("one", "two")
        messages = await read_chat(client, 300)
        assert await client.barrier() == []  # exactly the count
        assert by_channel(messages) == sim.sent and sim.finished
        streams.append([(m.params[0], m.params[1]) for m in messages])
        client.close()
    assert streams[0] == streams[1]  # same channels, texts and order


async def test_prebuilt_stream_survives_a_dropped_client(make_sim: SimFactory) -> None:
    sim = await make_sim(
        count=200, batch_size=32, prebuilt=True, faults=Faults(drop_after=50, apply_to_first=1)
    )
    first = await IrcClient.open(sim.port)
    await first.login()
    await first.join("resume")
    part_one = chat([line for line in (await first.rest()).decode().split("\r\n") if line])
    assert len(part_one) == 50
    second = await IrcClient.open(sim.port)
    await second.login()
    await second.join("resume")
    part_two = await read_chat(second, 150)
    assert await second.barrier() == []  # nothing generated beyond the count
    assert by_channel(part_one + part_two) == sim.sent and sim.sent_count == 200
    second.close()


def test_warming_templates_builds_the_cycle_without_changing_the_stream() -> None:
    cold, warm = TrafficGenerator(seed=5), TrafficGenerator(seed=5)
    warm.warm("chan")
    assert len(warm._pools["chan"].templates) == warm._cycle_length() == 1024
    assert cold._pools == {}
    texts = [[text for _, _, text in g.messages("chan", 1500)] for g in (cold, warm)]
    assert texts[0] == texts[1]


async def test_warm_templates_on_join_sends_the_same_chat(make_sim: SimFactory) -> None:
    streams = []
    for warm in (False, True):
        sim = await make_sim(count=120, seed=4, rate=20_000, warm_templates=warm)
        client = await IrcClient.open(sim.port)
        await client.login()
        await client.join("one", "two")
        if warm:  # built at the JOIN, before the first message
            assert len(sim.generator._pools) == 2
        messages = await read_chat(client, 120)
        streams.append([(m.params[0], m.params[1]) for m in messages])
        client.close()
    assert streams[0] == streams[1]


def test_prebuilt_applies_only_to_a_counted_unpaced_generated_stream() -> None:
    assert ChatSimulator(count=10, prebuilt=True).prebuilt
    assert not ChatSimulator(count=None, prebuilt=True).prebuilt
    assert not ChatSimulator(count=10, rate=100, prebuilt=True).prebuilt
    assert not ChatSimulator(count=10, replay_lines=["PING :x"], prebuilt=True).prebuilt


async def test_messages_only_go_to_connections_that_joined_the_channel(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(count=40)
    first, second = await IrcClient.open(sim.port), await IrcClient.open(sim.port)
    await first.login("justinfan1")
    await second.login("justinfan2")
    sim.pause()
    await first.join("one")
    await second.join("two")
    assert sim.sent_count == 0  # paused: nothing emitted
    sim.resume()
    await sim.wait_sent(40)
    got_first = chat(await first.barrier())
    got_second = chat(await second.barrier())
    assert {m.params[0] for m in got_first} == {"#one"}
    assert {m.params[0] for m in got_second} == {"#two"}
    assert by_channel(got_first + got_second) == sim.sent
    assert len(got_first) + len(got_second) == 40
    first.close()
    second.close()


async def test_rate_limited_stream_delivers_the_count(make_sim: SimFactory) -> None:
    sim = await make_sim(count=30, rate=3000)
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join("paced")
    messages = await read_chat(client, 30)
    assert by_channel(messages) == sim.sent
    client.close()


async def test_stream_pauses_without_listeners_and_resumes_for_the_next_client(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(count=50, faults=Faults(drop_after=20, apply_to_first=1))
    first = await IrcClient.open(sim.port)
    await first.login()
    await first.join("resume")
    part_one = chat([line for line in (await first.rest()).decode().split("\r\n") if line])
    assert len(part_one) == 20 and sim.sent_count == 20
    second = await IrcClient.open(sim.port)
    await second.login()
    await second.join("resume")
    part_two = await read_chat(second, 30)
    assert await second.barrier() == []
    assert by_channel(part_one + part_two) == sim.sent
    assert sim.sent_count == 50
    # The second client got exactly the continuation of the seeded sequence.
    expected = [text for _, _, text in TrafficGenerator(seed=1).messages("resume", 50)]
    assert [text for _, text in sim.sent["resume"]] == expected
    second.close()


def test_generated_lines_look_like_twitch_chat() -> None:
    gen = TrafficGenerator(seed=3)
    before_ms = time.time() * 1000
    batch = gen.messages("somechannel", 1500)
    parsed = [(parse(line), msg_id, text) for line, msg_id, text in batch]
    seen = {"action": 0, "reply": 0, "cheer": 0, "astral_before_emote": 0, "non_ascii": 0}
    required = {
        "badge-info", "badges", "client-nonce", "color", "display-name", "emotes", "first-msg",
        "flags", "id", "mod", "returning-chatter", "room-id", "subscriber", "tmi-sent-ts",
        "turbo", "user-id", "user-type",
    }  # fmt: skip
    for msg, msg_id, text in parsed:
        tags = msg.tags
        assert tags is not None and required <= tags.keys()
        assert list(tags) == sorted(tags)  # Twitch sends tags in alphabetical order
        assert tags["id"] == msg_id and msg.params == ["#somechannel", text]
        assert tags["room-id"] == room_id_for("somechannel")
        assert abs(int(tags["tmi-sent-ts"]) - before_ms) < 60_000
        assert msg.source is not None
        login = msg.source.split("!")[0]
        assert msg.source == f"{login}!{login}@{login}.tmi.twitch.tv"
        if tags["display-name"].isascii():
            assert tags["display-name"].lower() == login
        assert (tags["subscriber"] == "1") == ("subscriber/" in tags["badges"])
        assert (tags["mod"] == "1") == ("moderator/" in tags["badges"])
        body = text
        if text.startswith("\x01ACTION ") and text.endswith("\x01"):
            body = text[len("\x01ACTION ") : -1]
            seen["action"] += 1
        if not body.isascii():
            seen["non_ascii"] += 1
        first_emote_at = None
        if tags["emotes"]:
            for group in tags["emotes"].split("/"):
                emote_id, ranges = group.split(":")
                for span in ranges.split(","):
                    start, end = map(int, span.split("-"))
                    # code-point indexes, end inclusive
                    assert body[start : end + 1] == EMOTE_NAMES[emote_id], (body, span)
                    first_emote_at = min(start, first_emote_at or start)
        if first_emote_at and any(ord(c) > 0xFFFF for c in body[:first_emote_at]):
            seen["astral_before_emote"] += 1
        if "reply-parent-msg-id" in tags:
            seen["reply"] += 1
            assert body.startswith(f"@{tags['reply-parent-display-name']} ")
            for key in ("user-id", "user-login", "msg-body"):
                assert tags[f"reply-parent-{key}"]
            assert tags["reply-thread-parent-msg-id"] and tags["reply-thread-parent-user-login"]
        if "bits" in tags:
            seen["cheer"] += 1
            amounts = [int(n) for n in re.findall(r"(?i)\bcheer(\d+)\b", body)]
            assert sum(amounts) == int(tags["bits"])
    assert all(count > 0 for count in seen.values()), seen
    assert len({msg_id for _, msg_id, _ in batch}) == len(batch)
    assert any("\\s" in line and "reply-parent-msg-body" in line for line, _, _ in batch)

    # Deterministic given the seed: same texts, fresh ids.
    again = TrafficGenerator(seed=3).messages("somechannel", 1500)
    assert [t for _, _, t in again] == [t for _, _, t in batch]
    assert {i for _, i, _ in again}.isdisjoint(i for _, i, _ in batch)
    other = TrafficGenerator(seed=4).messages("somechannel", 50)
    assert [t for _, _, t in other] != [t for _, _, t in batch[:50]]
    line, msg_id, text = TrafficGenerator(seed=3).privmsg("#SomeChannel")
    assert line.endswith(f" PRIVMSG #somechannel :{text}")
    assert f";id={msg_id};" in line and "\r" not in line and "\n" not in line


async def test_replay_mode_sends_the_lines_verbatim(make_sim: SimFactory) -> None:
    lines = [
        "@badges=;color=;display-name=A;emotes=;id=aaaaaaaa-0000-4000-8000-000000000001;"
        "mod=0;room-id=5;subscriber=0;tmi-sent-ts=1700000000000;user-id=9 "
        ":a!a@a.tmi.twitch.tv PRIVMSG #elsewhere :first line",
        "@ban-duration=600;room-id=5;target-user-id=9;tmi-sent-ts=1700000000001 "
        ":tmi.twitch.tv CLEARCHAT #elsewhere :a",
        "@id=bbbbbbbb-0000-4000-8000-000000000002;msg-id=raid;room-id=5 "
        ":tmi.twitch.tv USERNOTICE #replayed :second",
    ]
    sim = await make_sim(replay_lines=lines)
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join("replayed")
    assert await client.recv_n(3) == lines
    assert await client.barrier() == []
    assert sim.finished and sim.sent_count == 3
    assert sim.sent == {
        "replayed": [
            ("aaaaaaaa-0000-4000-8000-000000000001", "first line"),
            ("", "a"),
            ("bbbbbbbb-0000-4000-8000-000000000002", "second"),
        ]
    }
    client.close()


# -- fault switches ----------------------------------------------------------------------------


async def test_reconnect_after_sends_reconnect_then_closes(make_sim: SimFactory) -> None:
    faults = Faults(reconnect_after=10, reconnect_close_delay=0.05)
    sim = await make_sim(count=25, faults=faults)
    received: list[irctokens.Line] = []
    for expected in (10, 10, 5):
        client = await IrcClient.open(sim.port)
        await client.login()
        await client.join("recon")
        received += await read_chat(client, expected)
        if expected == 10:
            assert await client.recv() == ":tmi.twitch.tv RECONNECT"
            assert await client.rest() == b""  # closed a moment later, nothing else sent
        else:
            assert await client.barrier() == []
            client.close()
    assert by_channel(received) == sim.sent and sim.sent_count == 25
    assert [index for index, _ in sim.joins] == [0, 1, 2]


async def test_drop_after_closes_without_goodbye(make_sim: SimFactory) -> None:
    sim = await make_sim(count=100, faults=Faults(drop_after=7))
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join("dropped")
    rest = (await client.rest()).decode()
    assert rest.endswith("\r\n")
    lines = rest[:-2].split("\r\n")
    assert len(chat(lines)) == 7  # seven PRIVMSGs, no RECONNECT or NOTICE
    assert by_channel(chat(lines)) == sim.sent
    await sim.wait_until(lambda: sim.connections == 0)


async def test_no_pong_ignores_ping(make_sim: SimFactory) -> None:
    faults = Faults()
    sim = await make_sim(count=0, faults=faults)
    client = await IrcClient.open(sim.port)
    await client.login()
    faults.no_pong = True  # switches can be flipped at run time
    await client.send("PING :ignored", "WHO")
    assert await client.recv() == ":tmi.twitch.tv 421 justinfan123 WHO :Unknown command"
    faults.no_pong = False
    assert await client.barrier() == []
    client.close()


async def test_reject_login_then_accept_after_the_first(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0, faults=Faults(reject_login=True, apply_to_first=1))
    client = await IrcClient.open(sim.port)
    await client.send("PASS oauth:abc", "NICK mybot")
    assert await client.rest() == b":tmi.twitch.tv NOTICE * :Login authentication failed\r\n"
    again = await IrcClient.open(sim.port)
    await again.send("PASS oauth:abc", "NICK mybot")
    assert await again.recv() == ":tmi.twitch.tv 001 mybot :Welcome, GLHF!"
    assert sim.logins == ["mybot", "mybot"]
    again.close()


async def test_suspended_channel_gets_notice_and_no_join(make_sim: SimFactory) -> None:
    sim = await make_sim(count=10, faults=Faults(suspended_channels={"banned"}))
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.send("JOIN #banned,#open")
    lines = await client.recv_until(lambda line: line.endswith("ROOMSTATE #open"))
    assert lines[0] == (
        "@msg-id=msg_channel_suspended :tmi.twitch.tv NOTICE #banned "
        ":This channel does not exist or has been suspended."
    )
    assert lines[1] == ":justinfan123!justinfan123@justinfan123.tmi.twitch.tv JOIN #open"
    assert not any("#banned" in line for line in lines[1:])
    await sim.wait_sent(10)
    assert set(sim.sent) == {"open"}
    client.close()


async def test_join_limit_disconnects(make_sim: SimFactory) -> None:
    sim = await make_sim(count=0, faults=Faults(join_limit_per_10s=3))
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join("a", "b", "c")
    await client.send("JOIN #d")
    assert await client.rest() == b""  # no JOIN echo for #d: disconnected
    assert [channel for _, channel in sim.joins] == ["a", "b", "c", "d"]
    await sim.wait_until(lambda: sim.connections == 0)


# -- WebSocket -------------------------------------------------------------------------------


async def ws_lines(ws: Any, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        frame = await asyncio.wait_for(ws.recv(), READ_TIMEOUT)
        assert isinstance(frame, str) and frame.endswith("\r\n")  # text frames of CRLF lines
        out += frame[:-2].split("\r\n")
    assert len(out) == n
    return out


async def test_websocket_speaks_the_same_irc_and_echoes_the_subprotocol(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(count=30, ws_port=0)
    assert sim.ws_port
    url = f"ws://127.0.0.1:{sim.ws_port}/"
    async with ws_connect(url, subprotocols=["irc"], proxy=None, compression=None) as ws:
        assert ws.subprotocol == "irc"
        await ws.send(f"CAP REQ :{CAPS}")  # one command per frame, no CRLF, like tmi.js
        await ws.send("PASS SCHMOOPIIE\r\nNICK justinfan99\r\n")
        lines = await ws_lines(ws, 8)
        assert lines[0] == f":tmi.twitch.tv CAP * ACK :{CAPS}"
        assert lines[-1] == ":tmi.twitch.tv 376 justinfan99 :>"
        await ws.send("JOIN #wschan")
        assert (await ws_lines(ws, 5))[0].endswith(" JOIN #wschan")
        messages = chat(await ws_lines(ws, 30))
        assert by_channel(messages) == sim.sent
        await ws.send("PING :ws")
        assert await ws_lines(ws, 1) == [":tmi.twitch.tv PONG tmi.twitch.tv :ws"]
    async with ws_connect(url, proxy=None) as plain:  # no subprotocol asked: none echoed
        assert plain.subprotocol is None
    with pytest.raises(InvalidStatus):
        async with ws_connect(url + "other", proxy=None):
            pass


async def test_websocket_drop_after_closes_without_a_close_frame(make_sim: SimFactory) -> None:
    sim = await make_sim(count=50, ws_port=0, faults=Faults(drop_after=5))
    async with ws_connect(f"ws://127.0.0.1:{sim.ws_port}/", proxy=None) as ws:
        await ws.send("NICK justinfan5\r\nJOIN #x")
        await ws_lines(ws, 7 + 3)
        assert len(chat(await ws_lines(ws, 5))) == 5
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), READ_TIMEOUT)
        assert closed.value.rcvd is None  # the server sent no close frame
    assert sim.sent_count == 5


# -- lifecycle and CLI ---------------------------------------------------------------------


async def test_stop_closes_everything_and_leaves_no_tasks() -> None:
    before = asyncio.all_tasks()
    sim = ChatSimulator(ws_port=0, ping_interval=0.05)
    await sim.start()
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join("busy")
    await sim.wait_sent(1000)  # unlimited stream running
    ws = await ws_connect(f"ws://127.0.0.1:{sim.ws_port}/", proxy=None)
    await ws.send("NICK justinfan8")
    await sim.wait_until(lambda: sim.connections == 2)
    assert len(asyncio.all_tasks() - before) > 1
    await sim.stop()
    assert sim.connections == 0
    while await asyncio.wait_for(client.reader.read(1 << 20), READ_TIMEOUT):
        pass  # drains to EOF
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), READ_TIMEOUT)
    await ws.close()
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert leftover == set(), leftover
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", sim.port)
    await sim.stop()  # idempotent
    client.close()


def test_cli_arguments_build_the_simulator(tmp_path: Path) -> None:
    import argparse

    replay = tmp_path / "replay.irc"
    replay.write_text(":a!a@a.tmi.twitch.tv PRIVMSG #x :hi\n\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    args = parser.parse_args(
        "--port 0 --ws-port 0 --rate 0 --count 5 --seed 9 --reconnect-after 3 --drop-after 4 "
        f"--no-pong --reject-login --join-limit 20 --suspended Gone --replay {replay} "
        "--prebuilt".split()
    )
    sim = sim_cli.build_simulator(args)
    assert (sim.port, sim.ws_port, sim.rate, sim.count, sim.seed) == (0, 0, None, 5, 9)
    assert sim.faults == Faults(
        reconnect_after=3,
        drop_after=4,
        no_pong=True,
        reject_login=True,
        join_limit_per_10s=20,
        suspended_channels={"gone"},
    )
    assert sim.finished is False and sim.record is False
    assert sim.prebuilt is False  # asked for, but a replay is sent as it is
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate", "-1"])


def test_cli_runs_until_sigterm() -> None:
    proc, _, port = start_simulator_cli("--count", "3")
    try:
        lines = read_from_cli(port, "cli", 3)
        assert len(chat(lines)) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
