"""The simulator's live mode over real sockets: chat on the clock, heard or not.

Every check compares what each socket actually read with the simulator's per-message record
(``receivers``), so a message counted for a connection that did not get it, or written to a
connection after its PART, fails. No timing is asserted; the stream is paused or stopped
before anything is compared, so no line is in flight.
"""

from __future__ import annotations

import argparse
import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.protocol import parse_line
from ingress_egress.simulator import ChatSimulator, LiveMessage, room_id_for
from ingress_egress.simulator import cli as sim_cli
from ingress_egress.twitch.messages import Clearchat, Clearmsg, Privmsg, Usernotice, from_irc
from tests.support.irc_client import IrcClient, read_from_cli, start_simulator_cli

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def sims() -> AsyncIterator[list[ChatSimulator]]:
    started: list[ChatSimulator] = []
    yield started
    for sim in started:
        await sim.stop()


async def live(sims: list[ChatSimulator], **kwargs: Any) -> ChatSimulator:
    sim = ChatSimulator(**kwargs)
    await sim.start()
    sims.append(sim)
    return sim


def chat_lines(lines: list[str]) -> list[str]:
    """The chat/event lines among what a client read (JOIN replies, PONG etc. dropped)."""
    kinds = (" PRIVMSG #", " USERNOTICE #", " CLEARCHAT #", " CLEARMSG #")
    return [line for line in lines if any(kind in line for kind in kinds)]


def assert_receivers_match(log: list[LiveMessage], *reads: list[str]) -> None:
    """Each record's ``receivers`` is exactly the number of clients that read its line."""
    seen = [set(chat_lines(read)) for read in reads]
    for read, lines in zip(reads, seen, strict=True):
        assert len(lines) == len(chat_lines(read)), "a client read a line twice"
        assert lines <= {m.line for m in log}, "a client read a line nothing recorded"
    for message in log:
        assert message.receivers == sum(message.line in lines for lines in seen), message


async def test_chat_is_produced_and_recorded_while_nobody_is_joined(
    sims: list[ChatSimulator],
) -> None:
    sim = await live(sims, live_channels=("#Alpha", "beta"), rate=500)
    await sim.wait_until(lambda: sim.live_count >= 20)
    sim.stop_live()
    assert sim.live_channels == ("alpha", "beta")
    log = sim.live_log
    assert len(log) == sim.live_count >= 20
    assert [m.channel for m in log[:4]] == ["alpha", "beta", "alpha", "beta"]
    assert all(m.command == "PRIVMSG" and m.receivers == 0 for m in log)
    assert sim.unheard() == log and sim.unheard_count == len(log)
    assert sim.sent_count == 0 and sim.sent == {}
    assert len({m.id for m in log}) == len(log)
    assert all(f"room-id={room_id_for(m.channel)};" in m.line for m in log)
    ats = [m.at for m in log]
    assert ats == sorted(ats)


async def test_connections_joined_to_a_channel_get_identical_lines(
    sims: list[ChatSimulator],
) -> None:
    sim = await live(sims, live_channels=("alpha", "beta"), rate=400)
    await sim.wait_until(lambda: sim.live_count >= 6)  # some chat before anyone joined
    first, second = await IrcClient.open(sim.port), await IrcClient.open(sim.port)
    await first.login("justinfan1")
    await second.login("justinfan2")
    await first.join("alpha", "beta")
    await second.join("alpha")
    joined = sim.live_count
    await sim.wait_until(lambda: sim.live_count >= joined + 40)
    sim.stop_live()
    read_first, read_second = await first.barrier(), await second.barrier()
    alpha_first = [line for line in chat_lines(read_first) if " PRIVMSG #alpha " in line]
    # From the second JOIN on, the same lines (same id tags) to both, in order, as Twitch does.
    alpha_second = chat_lines(read_second)
    assert len(alpha_second) >= 20
    assert alpha_first[len(alpha_first) - len(alpha_second) :] == alpha_second
    assert_receivers_match(sim.live_log, read_first, read_second)
    counts = {(m.channel, m.receivers) for m in sim.live_log}
    assert {("alpha", 0), ("beta", 0), ("alpha", 2), ("beta", 1)} <= counts
    heard = [m for m in sim.live_log if m.receivers]
    assert sim.sent_count == len(heard)
    alpha = [m for m in heard if m.channel == "alpha"]
    assert sim.sent["alpha"] == [(m.id, parse_line(m.line).param(1)) for m in alpha]
    first.close()
    second.close()


async def test_part_and_disconnect_stop_delivery_and_the_records_show_it(
    sims: list[ChatSimulator],
) -> None:
    sim = await live(sims, live_channels=("alpha",), rate=400)
    first, second = await IrcClient.open(sim.port), await IrcClient.open(sim.port)
    await first.login("justinfan1")
    await second.login("justinfan2")
    await first.join("alpha")
    await second.join("alpha")
    mark = sim.live_count
    await sim.wait_until(lambda: sim.live_count >= mark + 10)

    await second.send("PART #alpha")
    read_second = await second.recv_until(lambda line: line.endswith(" PART #alpha"))
    mark = sim.live_count
    await sim.wait_until(lambda: sim.live_count >= mark + 10)
    after_part = await second.barrier()
    assert chat_lines(after_part) == []  # nothing after the PART echo

    sim.pause()  # nothing in flight while the first connection goes away
    read_first = await first.barrier()
    first.close()
    await sim.wait_until(lambda: sim.connections == 1)
    sim.resume()
    mark = sim.live_count
    await sim.wait_until(lambda: sim.live_count >= mark + 10)
    sim.stop_live()

    assert_receivers_match(sim.live_log, read_first, read_second + after_part)
    phases = [m.receivers for m in sim.live_log]
    phases = phases[phases.index(2) :]  # from both joined: 2s, then 1s, then 0s, never back
    assert phases == sorted(phases, reverse=True)
    assert {2, 1, 0} <= set(phases)
    assert sim.unheard()[-1] is sim.live_log[-1]
    second.close()


async def test_events_have_twitchs_shapes_and_parse_into_typed_messages(
    sims: list[ChatSimulator],
) -> None:
    sim = await live(sims, live_channels=("alpha", "beta"), rate=600, live_events_every=2)
    client = await IrcClient.open(sim.port)
    await client.login()
    await client.join("alpha", "beta")
    mark = sim.live_count
    await sim.wait_until(lambda: sim.live_count >= mark + 60)
    sim.stop_live()
    read = await client.barrier()
    assert_receivers_match(sim.live_log, read)

    log = sim.live_log
    commands = [m.command for m in log[1::2]]  # every 2nd message is an event, in turn
    assert commands[:6] == ["USERNOTICE", "CLEARCHAT", "CLEARMSG"] * 2
    assert all(m.command == "PRIVMSG" for m in log[::2])
    kinds = ("PRIVMSG", "USERNOTICE", "CLEARCHAT", "CLEARMSG")
    assert {(m.channel, m.command) for m in log} == {
        (c, k) for c in ("alpha", "beta") for k in kinds
    }
    said: dict[str, set[str]] = {}
    for message in log:
        typed = from_irc(parse_line(message.line))
        tags = typed.irc.tags
        assert typed.channel == message.channel
        assert tags["tmi-sent-ts"].isdigit()
        if message.command == "PRIVMSG":
            assert isinstance(typed, Privmsg) and typed.message_id == message.id
            said.setdefault(message.channel, set()).add(message.id)
        elif message.command == "USERNOTICE":
            assert isinstance(typed, Usernotice) and typed.message_id == message.id
            assert typed.notice_type == "sub" and typed.room_id == room_id_for(message.channel)
            assert typed.system_message.endswith(" subscribed at Tier 1.")
            assert typed.params["sub-plan"] == "1000" and typed.chatter.login
        elif message.command == "CLEARCHAT":
            assert isinstance(typed, Clearchat) and typed.action == "timeout"
            assert typed.duration_seconds == 600 and typed.target_user_id == message.id
            assert typed.target_login and typed.room_id == room_id_for(message.channel)
        else:
            assert isinstance(typed, Clearmsg) and typed.target_message_id == message.id
            assert tags["room-id"] == "" and typed.target_login  # as Twitch sends it
            assert message.id in said[message.channel]  # deletes a message that was sent

    builder = EnvelopeBuilder()
    envelopes = [builder.build(from_irc(parse_line(m.line))) for m in log]
    ids = [envelope["id"] for envelope in envelopes if envelope is not None]
    assert len(ids) == len(log) == len(set(ids))  # every event: its own envelope id
    client.close()


async def test_count_ends_the_live_stream(sims: list[ChatSimulator]) -> None:
    sim = await live(sims, live_channels=("alpha",), rate=1000, count=25)
    await sim.wait_until(lambda: sim.finished)
    assert sim.live_count == 25 == len(sim.live_log) == sim.unheard_count


def test_live_mode_needs_a_rate_and_no_replay() -> None:
    with pytest.raises(ValueError, match="rate"):
        ChatSimulator(live_channels=("a",))
    with pytest.raises(ValueError, match="replay"):
        ChatSimulator(live_channels=("a",), rate=10, replay_lines=["x"])
    with pytest.raises(ValueError, match="live_events_every"):
        ChatSimulator(live_channels=("a",), rate=10, live_events_every=0)


def test_cli_live_options_build_a_live_simulator() -> None:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    args = parser.parse_args(
        ["--port", "0", "--live", "a,#B", "--rate", "50", "--live-events-every", "3"]
    )
    sim = sim_cli.build_simulator(args)
    assert (sim.live_channels, sim.rate, sim.live_events_every) == (("a", "b"), 50, 3)
    with pytest.raises(ValueError, match="--rate"):
        sim_cli.build_simulator(parser.parse_args(["--live", "a"]))
    with pytest.raises(ValueError, match="--live"):
        sim_cli.build_simulator(parser.parse_args(["--live-events-every", "2"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--live", ","])


def test_cli_live_mode_reports_what_nobody_heard() -> None:
    proc, banner, port = start_simulator_cli("--live", "cli", "--rate", "200")
    try:
        assert "(live: 1 channels at 200 msg/s)" in banner, banner
        lines = read_from_cli(port, "cli", 3)
        assert len(chat_lines(lines)) == 3
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0
        summary = re.search(r"live: (\d+) produced, (\d+) heard by nobody", err.decode())
        assert summary, err
        assert int(summary.group(1)) >= int(summary.group(2)) + 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
