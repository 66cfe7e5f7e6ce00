"""The egress sender end to end: a real nats-server, the simulator over real IRC sockets.

The simulator is the referee (Twitch's limits exactly, no margin, every breach recorded);
the sender and the referee share a clock running 20x real time (tests/support/egress.py).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ingress_egress.egress.irc_transport import IrcChatTransport
from ingress_egress.egress.sender import SenderSettings
from ingress_egress.egress.text import NEUTRALISER
from ingress_egress.protocol.endpoint import IrcEndpoint
from ingress_egress.simulator import Faults
from ingress_egress.simulator.rules import SendRecord
from ingress_egress.sources.irc.transport import open_transport
from tests.support.egress import (
    BOT,
    DLQ,
    RATE,
    Rig,
    all_answered,
    command,
    create_finalizer_stream,
    egress_rig,
    per_command,
    publish,
    results,
    stored,
)
from tests.support.nats import NatsServer
from tests.support.service import eventually

pytestmark = pytest.mark.timeout(180)

ROLES = {
    "modchan": "moderator",
    "vipchan": "vip",
    "egressbot": "broadcaster",
    "plainone": "none",
    "plaintwo": "none",
    "plainthree": "none",
}
SLOW = {"slowchan": 3}


@pytest.fixture
async def rig(nats_server: NatsServer) -> AsyncIterator[Rig]:
    async with egress_rig(nats_server.url) as started:
        yield started


def set_up_channels(rig: Rig) -> None:
    for channel, role in ROLES.items():
        rig.sim.set_channel(channel, role=role)
    for channel, slow in SLOW.items():
        rig.sim.set_channel(channel, slow=slow)


def texts_sent(rig: Rig, channel: str) -> list[str]:
    return [s.text for s in rig.accepted(channel)]


async def test_a_burst_across_channels_never_breaches_and_each_command_gets_one_result(
    rig: Rig,
) -> None:
    set_up_channels(rig)
    channels = [*ROLES, *SLOW]
    chooser = random.Random(7)
    commands = []
    for n in range(300):
        # few for the slow channel: one message per 3 s there
        channel = "slowchan" if n % 25 == 0 else chooser.choice(list(ROLES))
        commands.append(command(channel, f"answer {n} for {channel}", rig.clock))
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands], timeout=150)

    assert rig.sim.breaches == []
    counts = per_command(records)
    assert set(counts) == {c["id"] for c in commands}
    assert set(counts.values()) == {1}
    assert Counter(r["status"] for r in records) == {"sent": 300}
    accepted = rig.accepted()
    assert len(accepted) == 300
    # each result names its own message: the id the simulator gave that very text
    id_of_text = {s.text: s.id for s in accepted}
    by_id = {c["id"]: c for c in commands}
    for record in records:
        text = by_id[record["envelopeId"]]["payload"]["text"]
        assert record["twitchMessageIds"] == [id_of_text[text]]
    # per channel the order of the commands is kept
    for channel in channels:
        wanted = [c["payload"]["text"] for c in commands if c["target"]["channel"] == channel]
        assert texts_sent(rig, channel) == wanted
    # the privileged channels went faster than 20 per 30 s allows: the role was learned
    assert any(s.privileged for s in accepted)
    block = rig.sender.describe()
    assert block["stats"]["results"] == {"sent": 300}
    assert block["channels"]["modchan"]["privileged"] is True
    assert block["channels"]["plainone"]["privileged"] is False
    assert block["channels"]["slowchan"]["slowSeconds"] == 3


async def test_the_bot_unmodded_mid_burst_is_held_to_the_lower_limits_from_the_next_message(
    rig: Rig,
) -> None:
    rig.sim.set_channel("modchan", role="moderator")
    judge = rig.sim.rules.judge
    seen: list[str] = []

    def judge_and_unmod(*args, **kwargs):  # type: ignore[no-untyped-def]
        decision = judge(*args, **kwargs)
        seen.append(args[1])
        if len(seen) == 10:  # Twitch takes the role away as the 10th message arrives
            rig.sim.set_channel("modchan", role="none")
        return decision

    rig.sim.rules.judge = judge_and_unmod  # type: ignore[method-assign]
    commands = [command("modchan", f"line {n}", rig.clock) for n in range(40)]
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands])

    assert rig.sim.breaches == []
    assert Counter(r["status"] for r in records) == {"sent": 40}
    sends: list[SendRecord] = rig.accepted("modchan")
    assert [s.privileged for s in sends[:10]] == [True] * 10
    assert not any(s.privileged for s in sends[10:])
    # from the 11th on the referee judged them unprivileged (1 s apart, 20 per 30 s) and
    # recorded no breach (above); the sender knows the role is gone
    assert rig.channels.is_privileged("modchan") is False


async def test_a_1200_character_text_goes_as_three_parts_in_order(rig: Rig) -> None:
    words = [f"w{n:03d}" for n in range(240)]  # 240 x 5 = 1,200 characters with spaces
    text = " ".join(words)[:1200]
    body = command("plainone", text, rig.clock)
    await publish(rig.nc, body)
    [record] = await all_answered(rig, [body["id"]])

    sent = rig.accepted("plainone")
    assert record["status"] == "sent"
    assert len(sent) == 3
    assert record["twitchMessageIds"] == [s.id for s in sent]
    assert " ".join(s.text for s in sent) == text
    assert all(len(s.text) <= 500 for s in sent)
    assert rig.sim.breaches == []


async def test_cr_lf_and_nul_never_reach_the_wire(rig: Rig) -> None:
    nasty = [
        "hello\r\nPRIVMSG #plaintwo :injected",
        "one\nJOIN #elsewhere",
        "nul\x00byte\rQUIT",
    ]
    commands = [command("plainone", text, rig.clock) for text in nasty]
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands])

    assert {r["status"] for r in records} == {"sent"}
    assert rig.sim.injections == []
    assert rig.accepted("plaintwo") == []
    assert [s.text for s in rig.accepted("plainone")] == [
        "hello  PRIVMSG #plaintwo :injected",
        "one JOIN #elsewhere",
        "nul byte QUIT",
    ]


async def test_a_leading_slash_or_dot_never_runs_a_chat_command(rig: Rig) -> None:
    commands = [command("plainone", text, rig.clock) for text in ("/ban someone", ".clear")]
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands])

    assert {r["status"] for r in records} == {"sent"}
    assert rig.sim.command_attempts == []
    assert [s.text for s in rig.accepted("plainone")] == [
        NEUTRALISER + "/ban someone",
        NEUTRALISER + ".clear",
    ]


async def test_an_action_and_a_reply_are_sent_as_such(rig: Rig) -> None:
    parent = "885196de-cb67-427a-baa8-82f9b0fcd05f"
    action = command("plainone", "waves", rig.clock, is_action=True)
    reply = command("plainone", "hello there", rig.clock, reply_to=parent)
    await publish(rig.nc, action, reply)
    await all_answered(rig, [action["id"], reply["id"]])

    texts = [t for _, _, t in rig.sim.privmsgs]
    assert texts == ["\x01ACTION waves\x01", "hello there"]
    assert rig.sim.bot_sends[0].outcome == "accepted"


async def test_repeats_are_made_distinct_and_all_go(rig: Rig) -> None:
    commands = [command("plainone", "same text", rig.clock) for _ in range(4)]
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands])

    assert [r["status"] for r in records] == ["sent"] * 4
    assert [s.outcome for s in rig.sim.bot_sends] == ["accepted"] * 4
    texts = texts_sent(rig, "plainone")
    assert all(a != b for a, b in itertools.pairwise(texts))


async def test_the_same_command_published_twice_is_sent_once(rig: Rig) -> None:
    body = command("plainone", "only once", rig.clock)
    await publish(rig.nc, body, body)
    await all_answered(rig, [body["id"]])
    later = command("plainone", "after", rig.clock)
    await publish(rig.nc, later, body)  # and once more, after it was answered
    await all_answered(rig, [later["id"]])
    await eventually(lambda: rig.sender.stats.redelivered_with_outcome >= 1)

    assert [s.text for s in rig.accepted("plainone")] == ["only once", "after"]
    records = await results(rig.nc)
    # the re-published result has the same Nats-Msg-Id: stored once
    assert per_command(records)[body["id"]] == 1


async def test_twitch_refusals_are_dropped_with_twitchs_reason(rig: Rig) -> None:
    rig.sim.set_channel("banned", banned=True)
    rig.sim.set_channel("subsonly", subs_only=True)
    rig.sim.set_channel("followers", followers_only=10)
    commands = [command(ch, "hi", rig.clock) for ch in ("banned", "subsonly", "followers")]
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands])

    reasons = {r["channel"]: (r["status"], r["reason"]) for r in records}
    assert reasons == {
        "banned": ("dropped", "msg_banned"),
        "subsonly": ("dropped", "msg_subsonly"),
        "followers": ("dropped", "msg_followersonly"),
    }
    assert all(r["twitchMessageIds"] == [] for r in records)


async def test_unreadable_goes_to_the_dlq_invalid_and_stale_are_answered(rig: Rig) -> None:
    invalid = command("plainone", "x", rig.clock)
    invalid["type"] = "something.else"
    stale = command("plainone", "too late", rig.clock, age_s=200_000)
    await publish(rig.nc, b"{not json", invalid, stale)
    records = await all_answered(rig, [invalid["id"], stale["id"]])

    by_id = {r["envelopeId"]: r for r in records}
    assert (by_id[invalid["id"]]["status"], by_id[invalid["id"]]["reason"]) == (
        "dropped",
        "invalid",
    )
    assert by_id[stale["id"]]["status"] == "expired"
    dead = await stored(rig.nc, "EGRESS", DLQ)
    assert len(dead) == 1 and "not JSON" in dead[0]["reason"]
    assert rig.sim.bot_sends == []


async def test_without_a_finalizer_stream_commands_wait_unacked_then_go_through(
    nats_server: NatsServer,
) -> None:
    settings = SenderSettings(
        bus_prefix="test.", max_age_s=100_000.0, missing_destination_delay_s=0.3
    )
    async with egress_rig(nats_server.url, finalizer=False, settings=settings) as rig:
        body = command("plainone", "waiting for the finalizer", rig.clock)
        await publish(rig.nc, body)
        await eventually(lambda: rig.sender.stats.destination_missing >= 1)
        blocked = rig.sender.describe()["destinationBlocked"]
        assert blocked and "test.internal.finalizer.v1" in blocked
        await create_finalizer_stream(rig.nc)
        [record] = await all_answered(rig, [body["id"]], timeout=60)
        assert record["status"] == "sent"
        assert [s.text for s in rig.accepted("plainone")] == ["waiting for the finalizer"]
        assert rig.sender.describe()["destinationBlocked"] is None


async def test_a_sender_stopped_mid_burst_and_replaced_sends_nothing_twice(
    nats_server: NatsServer,
) -> None:
    settings = SenderSettings(
        bus_prefix="test.", max_age_s=100_000.0, progress_interval_s=0.3, retry_delay_s=0.2
    )
    async with egress_rig(nats_server.url, settings=settings, ack_wait_s=1.0) as first:
        set_up_channels(first)
        commands = [
            command(("plainone", "plaintwo", "modchan")[n % 3], f"burst {n}", first.clock)
            for n in range(60)
        ]
        await publish(first.nc, *commands)
        await eventually(lambda: len(first.accepted()) >= 15, what="a part of the burst")
        sim, clock = first.sim, first.clock
        # the sender goes away with commands queued, in flight and unacknowledged
        await first.sender.stop()
        async with egress_rig(
            nats_server.url, settings=settings, ack_wait_s=1.0, sim=sim, clock=clock
        ) as second:
            # the new sender counts what the first one sent lately (from the ledger)
            assert second.sender.describe()["window"]["inWindow"] > 0
            records = await all_answered(second, [c["id"] for c in commands])

    texts = [s.text for s in sim.bot_sends]
    assert len(texts) == len(set(texts))  # no text reached Twitch twice
    assert sim.breaches == []
    counts = per_command(records)
    assert set(counts.values()) == {1} and len(counts) == 60
    statuses = Counter(r["status"] for r in records)
    assert set(statuses) <= {"sent", "unknown"}
    sent_texts = {s.text for s in sim.bot_sends if s.outcome == "accepted"}
    by_id = {c["id"]: c["payload"]["text"] for c in commands}
    for record in records:
        if record["status"] == "sent":
            assert by_id[record["envelopeId"]] in sent_texts
        else:  # started by the first sender, never finished: reported, not resent
            assert record["reason"] == "interrupted"


class _DelayFirstAnswer:
    """Holds back Twitch's first USERSTATE with an ``id`` until the next read: an answer
    that comes after the sender stopped waiting for it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.held: str | None = None
        self.done = False

    async def read_lines(self) -> list[str]:
        while True:
            lines = await self.inner.read_lines()
            out = [self.held] if self.held is not None else []
            self.held = None
            for line in lines:
                if not self.done and " USERSTATE " in line and ";id=" in line:
                    self.held, self.done = line, True
                    continue
                out.append(line)
            if out:
                return out

    async def send_lines(self, lines: list[str]) -> None:
        await self.inner.send_lines(lines)

    async def close(self) -> None:
        await self.inner.close()


def late_answers(sim: Any, channels: Any, clock: Any) -> IrcChatTransport:
    async def token() -> str:
        return BOT.token

    async def open_delayed(endpoint: IrcEndpoint, timeout: float) -> _DelayFirstAnswer:
        return _DelayFirstAnswer(await open_transport(endpoint, timeout))

    return IrcChatTransport(
        IrcEndpoint("irc", "127.0.0.1", sim.port),
        BOT.login,
        token,
        channels,
        open_delayed,
        clock=clock.sender_clock(),
        answer_timeout_s=0.5,
    )


async def test_a_late_answer_is_reported_unknown_and_never_given_to_the_next_message(
    nats_server: NatsServer,
) -> None:
    async with egress_rig(nats_server.url, transport=late_answers) as rig:
        first = command("plainone", "answered late", rig.clock)
        await publish(rig.nc, first)
        [record] = await all_answered(rig, [first["id"]])
        second = command("plainone", "answered in time", rig.clock)
        await publish(rig.nc, second)
        records = await all_answered(rig, [first["id"], second["id"]])

    assert (record["status"], record["reason"], record["twitchMessageIds"]) == (
        "unknown",
        "no_answer",
        [],
    )
    late, in_time = rig.accepted("plainone")
    assert records[1]["twitchMessageIds"] == [in_time.id] != [late.id]


class _ReconnectAfterFirstAnswer(_DelayFirstAnswer):
    """Twitch's ``RECONNECT`` right after the first answer on the first connection."""

    sent_reconnect = False

    async def read_lines(self) -> list[str]:
        lines = await self.inner.read_lines()
        if not _ReconnectAfterFirstAnswer.sent_reconnect and any(
            " USERSTATE " in line and ";id=" in line for line in lines
        ):
            _ReconnectAfterFirstAnswer.sent_reconnect = True
            return [*lines, ":tmi.twitch.tv RECONNECT"]
        return lines


def reconnecting(sim: Any, channels: Any, clock: Any) -> IrcChatTransport:
    async def token() -> str:
        return BOT.token

    async def open_reconnecting(endpoint: IrcEndpoint, timeout: float) -> Any:
        return _ReconnectAfterFirstAnswer(await open_transport(endpoint, timeout))

    _ReconnectAfterFirstAnswer.sent_reconnect = False
    return IrcChatTransport(
        IrcEndpoint("irc", "127.0.0.1", sim.port),
        BOT.login,
        token,
        channels,
        open_reconnecting,
        clock=clock.sender_clock(),
    )


async def test_reconnect_asked_by_twitch_loses_nothing(nats_server: NatsServer) -> None:
    async with egress_rig(nats_server.url, transport=reconnecting) as rig:
        commands = [command("plainone", f"around a reconnect {n}", rig.clock) for n in range(6)]
        await publish(rig.nc, *commands)
        records = await all_answered(rig, [c["id"] for c in commands])
        described = rig.sender.describe()["transport"]

    assert Counter(r["status"] for r in records) == {"sent": 6}
    assert described["logins"] == 2 and described["reconnects"] == 1
    assert rig.sim.connections_made == 2
    assert len(rig.accepted("plainone")) == 6


async def test_joins_stay_within_twitchs_budget(nats_server: NatsServer) -> None:
    # the referee's JOIN window is in real seconds: Twitch's 10 s at the rig's pace
    faults = Faults(join_limit_per_10s=20, join_window=10.0 / RATE)
    async with egress_rig(nats_server.url, sim_options={"faults": faults}) as rig:
        commands = [command(f"room{n:02d}", "hello room", rig.clock) for n in range(45)]
        await publish(rig.nc, *commands)
        records = await all_answered(rig, [c["id"] for c in commands])
        described = rig.sender.describe()["transport"]

    assert Counter(r["status"] for r in records) == {"sent": 45}
    assert described["reconnects"] == 0  # over the budget, Twitch would have cut us off
    assert len({channel for _, channel in rig.sim.joins}) == 45
    assert rig.sim.breaches == []


async def test_a_refused_login_is_retried_and_a_suspended_channel_dropped(
    nats_server: NatsServer,
) -> None:
    faults = Faults(reject_login=True, apply_to_first=1, suspended_channels={"gone"})
    async with egress_rig(nats_server.url, sim_options={"faults": faults}) as rig:
        ok = command("plainone", "after a refused login", rig.clock)
        gone = command("gone", "into the void", rig.clock)
        await publish(rig.nc, ok, gone)
        records = await all_answered(rig, [ok["id"], gone["id"]])
        described = rig.sender.describe()["transport"]

    by_channel = {r["channel"]: (r["status"], r["reason"]) for r in records}
    assert by_channel == {"plainone": ("sent", None), "gone": ("dropped", "msg_channel_suspended")}
    assert described["reconnects"] >= 1 and described["logins"] == 1
    assert "egress-token" not in str(described)


async def test_with_drop_policies_a_repeat_and_a_long_text_are_dropped(
    nats_server: NatsServer,
) -> None:
    settings = SenderSettings(
        bus_prefix="test.", max_age_s=100_000.0, repeat="drop", long_text="drop"
    )
    async with egress_rig(nats_server.url, settings=settings) as rig:
        rig.sim.set_channel("modchan", role="moderator")
        commands = [
            command("plainone", "said twice", rig.clock),
            command("plainone", "said twice", rig.clock),
            command("modchan", "said twice", rig.clock),
            command("modchan", "said twice", rig.clock),
            command("plaintwo", "word " * 200, rig.clock),
        ]
        await publish(rig.nc, *commands)
        records = await all_answered(rig, [c["id"] for c in commands])

    by_id = {r["envelopeId"]: (r["status"], r["reason"]) for r in records}
    assert [by_id[c["id"]] for c in commands] == [
        ("sent", None),
        ("dropped", "msg_duplicate"),
        ("sent", None),  # a moderator may repeat itself
        ("sent", None),
        ("dropped", "too_long"),
    ]
    assert Counter(s.channel for s in rig.sim.bot_sends) == {"plainone": 1, "modchan": 2}
