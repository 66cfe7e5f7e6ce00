"""Two readers of one channel (the cluster) publish the same envelope id and de-duplication id
for every Twitch-stamped event, so JetStream stores one copy (docs/envelope.md, "Ids").

Each "instance" is its own ``EnvelopeBuilder`` (own random ids, own clock); the lines are
real Twitch shapes (tests/fixtures/ and Twitch's documentation).
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from ingress_egress.bus.nats import NatsPublisher
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope.builder import ROOMSTATE_WINDOW_MS
from ingress_egress.protocol import parse_line
from ingress_egress.simulator import ChatSimulator
from ingress_egress.sources.irc.codec import make_codec
from ingress_egress.twitch.messages import TwitchMessage, from_irc
from tests.support.irc_client import IrcClient
from tests.support.nats import NatsHarness, NatsServer

pytestmark = pytest.mark.timeout(60)

# A receipt time 1.2 s into a 5 s window, and the other instance's 2.9 s later (same window).
WINDOW_S = ROOMSTATE_WINDOW_MS / 1000
T0 = 1_796_400_000 // WINDOW_S * WINDOW_S + 1.2
T1 = T0 + 2.9

LINES = {
    "privmsg": "@badge-info=;badges=;color=#0000FF;display-name=Viewer;emotes=;first-msg=0;"
    "flags=;id=885196de-cb67-427a-baa8-82f9b0fcd05f;mod=0;room-id=501;subscriber=0;"
    "tmi-sent-ts=1642696567751;turbo=0;user-id=123;user-type= "
    ":viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #alpha :hello",
    "usernotice": "@badge-info=subscriber/1;badges=subscriber/0;color=;display-name=Loyal;"
    "emotes=;flags=;id=57cbe8d9-8d17-4760-b1e7-0d888e1fdc60;login=loyal;mod=0;msg-id=sub;"
    "msg-param-cumulative-months=1;msg-param-sub-plan=1000;room-id=501;subscriber=1;"
    "system-msg=Loyal\\ssubscribed\\sat\\sTier\\s1.;tmi-sent-ts=1642696567800;user-id=321;"
    "user-type= :tmi.twitch.tv USERNOTICE #alpha",
    "timeout": "@ban-duration=600;room-id=501;target-user-id=123;tmi-sent-ts=1642715756806 "
    ":tmi.twitch.tv CLEARCHAT #alpha :viewer",
    "ban": "@room-id=501;target-user-id=123;tmi-sent-ts=1642715695392 "
    ":tmi.twitch.tv CLEARCHAT #alpha :viewer",
    "clear-all": "@room-id=501;tmi-sent-ts=1642715695392 :tmi.twitch.tv CLEARCHAT #alpha",
    # Twitch sends CLEARMSG with room-id present but empty.
    "clearmsg": "@login=viewer;room-id=;target-msg-id=885196de-cb67-427a-baa8-82f9b0fcd05f;"
    "tmi-sent-ts=1642720582342 :tmi.twitch.tv CLEARMSG #alpha :hello",
    # Twitch's ROOMSTATEs carry no tmi-sent-ts: the receipt window keys them.
    "roomstate-change": "@room-id=501;slow=30 :tmi.twitch.tv ROOMSTATE #alpha",
    "roomstate-full": "@emote-only=0;followers-only=-1;r9k=0;room-id=501;slow=0;subs-only=0 "
    ":tmi.twitch.tv ROOMSTATE #alpha",
}


def typed(line: str) -> TwitchMessage:
    return from_irc(parse_line(line))


def convert(builder: EnvelopeBuilder, line: str, received_at: float) -> OutboundMessage:
    """The service's conversion (its codec: the native one when built), as a read makes it."""
    decoded = make_codec(builder).decode([line], received_at)
    assert not decoded.errors, decoded.errors
    (out,) = decoded.envelopes
    return out


@pytest.mark.parametrize("name", list(LINES))
def test_two_instances_give_an_event_the_same_ids(name: str) -> None:
    line = LINES[name]
    first = convert(EnvelopeBuilder(), line, T0)
    second = convert(EnvelopeBuilder(), line, T1)
    assert first.envelope_id == second.envelope_id
    assert first.dedup_id == second.dedup_id  # what Nats-Msg-Id carries
    assert first.data != second.data  # yet two receipts: different timestamps and trace ids
    envelope = orjson.loads(first.data)
    assert envelope["id"] == envelope["correlationId"] == first.envelope_id
    # The Python builder agrees with whatever codec built it.
    reference = EnvelopeBuilder().build(typed(line), T1)
    assert reference is not None
    assert reference["id"] == first.envelope_id


def test_different_events_have_different_ids() -> None:
    ids = {name: convert(EnvelopeBuilder(), line, T0) for name, line in LINES.items()}
    assert len({out.envelope_id for out in ids.values()}) == len(LINES)
    assert len({out.dedup_id for out in ids.values()}) == len(LINES)
    # Two timeouts of one user a millisecond apart, and two settings in one window, differ.
    later = LINES["timeout"].replace("tmi-sent-ts=1642715756806", "tmi-sent-ts=1642715756807")
    assert convert(EnvelopeBuilder(), later, T0).envelope_id != ids["timeout"].envelope_id
    slower = LINES["roomstate-change"].replace("slow=30", "slow=60")
    assert convert(EnvelopeBuilder(), slower, T0).envelope_id != ids["roomstate-change"].envelope_id
    other_room = LINES["roomstate-change"].replace("room-id=501", "room-id=502")
    assert (
        convert(EnvelopeBuilder(), other_room, T0).envelope_id
        != ids["roomstate-change"].envelope_id
    )


def test_roomstate_receipts_straddling_a_window_edge_get_two_ids() -> None:
    # The documented cost of keying on the receipt time: a harmless duplicate restatement.
    edge = (T0 // WINDOW_S + 1) * WINDOW_S
    line = LINES["roomstate-change"]
    before = convert(EnvelopeBuilder(), line, edge - 0.001)
    after = convert(EnvelopeBuilder(), line, edge)
    assert before.envelope_id != after.envelope_id
    # An identical restatement within one window collapses into one id (same state).
    assert convert(EnvelopeBuilder(), line, edge + WINDOW_S - 0.001).envelope_id == (
        after.envelope_id
    )


def test_a_roomstate_with_tmi_sent_ts_is_keyed_by_it_not_by_the_receipt() -> None:
    line = "@room-id=501;slow=30;tmi-sent-ts=1642720582342 :tmi.twitch.tv ROOMSTATE #alpha"
    far_apart = convert(EnvelopeBuilder(), line, T0), convert(EnvelopeBuilder(), line, T0 + 60)
    assert far_apart[0].envelope_id == far_apart[1].envelope_id


def test_normalize_keeps_random_roomstate_ids_and_a_stampless_clearchat_is_random() -> None:
    backfill = EnvelopeBuilder(roomstate_window_ms=None)
    line = LINES["roomstate-change"]
    assert convert(backfill, line, T0).envelope_id != convert(backfill, line, T0).envelope_id
    # No tmi-sent-ts (old logs, never live Twitch): no key, a random id, deduplicated by none.
    stampless = "@room-id=501;target-user-id=123 :tmi.twitch.tv CLEARCHAT #alpha :viewer"
    first, second = (
        convert(EnvelopeBuilder(), stampless, T0),
        convert(EnvelopeBuilder(), stampless, T0),
    )
    assert first.envelope_id != second.envelope_id
    assert first.dedup_id == first.envelope_id
    with pytest.raises(ValueError, match="roomstate_window_ms"):
        EnvelopeBuilder(roomstate_window_ms=0)


async def read_both(sim: ChatSimulator) -> tuple[list[str], list[str]]:
    """Two connections joined to one live channel; everything each read (JOIN replies too)."""
    first, second = await IrcClient.open(sim.port), await IrcClient.open(sim.port)
    await first.login("justinfan1")
    await second.login("justinfan2")
    await first.send("JOIN #alpha")
    await second.send("JOIN #alpha")
    mark = sim.live_count
    await sim.wait_until(lambda: sim.live_count >= mark + 120)
    sim.stop_live()
    reads = (await first.barrier(), await second.barrier())
    first.close()
    second.close()
    return reads


def instance_outbound(lines: list[str], received_at: float) -> list[OutboundMessage]:
    """One instance's conversion of what its connection read, as the read loop does it."""
    return make_codec(EnvelopeBuilder()).decode(lines, received_at).envelopes


async def publish(url: str, messages: list[OutboundMessage]) -> None:
    publisher = NatsPublisher(url, "dev.internal.ingress.v1", "ING")
    await publisher.start()
    futures = [await publisher.send(message) for message in messages]
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    await publisher.close()


async def test_two_readers_of_one_channel_store_one_copy_of_each_event(
    nats_server: NatsServer,
) -> None:
    sim = ChatSimulator(live_channels=("alpha",), rate=600, live_events_every=4)
    await sim.start()
    try:
        read_first, read_second = await read_both(sim)
    finally:
        await sim.stop()
    first = instance_outbound(read_first, T0)
    second = instance_outbound(read_second, T1)
    kinds = {m.type for m in first} & {m.type for m in second}
    assert kinds == {
        "external.chat.message.v1",
        "external.chat.notification.v1",
        "external.chat.moderation.v1",
        "external.chat.roomstate.v1",  # each connection's ROOMSTATE on JOIN
    }
    expected = {m.envelope_id for m in first} | {m.envelope_id for m in second}
    overlap = {m.envelope_id for m in first} & {m.envelope_id for m in second}
    assert len(overlap) >= 100

    # The two instances publish at the same time over their own NATS connections.
    await asyncio.gather(publish(nats_server.url, first), publish(nats_server.url, second))
    stored = await NatsHarness(nats_server.url, "ING", "dev.internal.ingress.v1").received(
        len(expected)
    )
    ids = [orjson.loads(message.data)["id"] for message in stored]
    assert len(ids) == len(set(ids)) == len(expected) < len(first) + len(second)
    assert set(ids) == expected
    msg_ids = [message.attributes["Nats-Msg-Id"] for message in stored]
    assert len(set(msg_ids)) == len(msg_ids)
