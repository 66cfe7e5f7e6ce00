"""The egress sender through Helix: the simulator's Helix mock over real HTTP, nats-server.

The mock judges each ``POST /helix/chat/messages`` by the same rules as an IRC PRIVMSG and
relays it to the IRC readers; its point bucket runs on the rig's clock (20x real time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from ingress_egress.egress.helix_transport import HelixChatTransport
from tests.support.egress import (
    BOT,
    Rig,
    all_answered,
    command,
    egress_rig,
    helix_transport,
    publish,
)
from tests.support.nats import NatsServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def rig(nats_server: NatsServer) -> AsyncIterator[Rig]:
    async with egress_rig(
        nats_server.url, transport=helix_transport, sim_options={"helix_port": 0}
    ) as started:
        yield started


def transport(rig: Rig) -> HelixChatTransport:
    found = rig.sender.transport
    assert isinstance(found, HelixChatTransport)
    return found


def helix_posts(rig: Rig) -> list[int]:
    assert rig.sim.helix is not None
    return [c.status for c in rig.sim.helix.calls if c.path == "/helix/chat/messages"]


async def test_sent_and_dropped_with_helixs_drop_reason(rig: Rig) -> None:
    rig.sim.set_channel("banned", banned=True)
    rig.sim.set_channel("emotes", emote_only=True)
    rig.sim.set_channel("subsonly", subs_only=True)
    commands = [
        command(channel, "hello chat", rig.clock)
        for channel in ("plainone", "banned", "emotes", "subsonly")
    ]
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands])

    by_channel = {r["channel"]: r for r in records}
    assert {ch: (r["status"], r["reason"]) for ch, r in by_channel.items()} == {
        "plainone": ("sent", None),
        "banned": ("dropped", "msg_banned"),
        "emotes": ("dropped", "msg_emoteonly"),
        "subsonly": ("dropped", "msg_subsonly"),
    }
    [accepted] = rig.accepted()
    assert accepted.via == "helix"
    assert by_channel["plainone"]["twitchMessageIds"] == [accepted.id]
    assert transport(rig).user_id == BOT.user_id


async def test_a_429_waits_for_the_reset_and_sends_once(rig: Rig) -> None:
    assert rig.sim.helix is not None
    warm = command("plainone", "first", rig.clock)
    await publish(rig.nc, warm)
    await all_answered(rig, [warm["id"]])
    helix = rig.sim.helix

    helix.hold_empty(BOT.token)  # until the send met the empty bucket
    body = command("plainone", "after the bucket refilled", rig.clock)
    await publish(rig.nc, body)
    await eventually(lambda: 429 in helix_posts(rig), 30, "a send met the empty bucket")
    helix.hold_empty(BOT.token, held=False)
    [_, record] = await all_answered(rig, [warm["id"], body["id"]])

    assert record["status"] == "sent"
    assert transport(rig).rate_limited >= 1
    assert 429 in helix_posts(rig)
    assert [s.text for s in rig.accepted()] == ["first", "after the bucket refilled"]


async def test_a_500_is_retried_and_a_401_refreshes_the_token_once(rig: Rig) -> None:
    assert rig.sim.helix is not None
    warm = command("plainone", "first", rig.clock)
    await publish(rig.nc, warm)
    await all_answered(rig, [warm["id"]])
    rig.sim.helix.fail_next(500, 1)
    retried = command("plainone", "after a 500", rig.clock)
    await publish(rig.nc, retried)
    await all_answered(rig, [retried["id"]])
    rig.sim.helix.fail_next(401, 2)
    refused = command("plainone", "with a dead token", rig.clock)
    await publish(rig.nc, refused)
    records = await all_answered(rig, [retried["id"], refused["id"]])

    by_id = {r["envelopeId"]: r for r in records}
    assert by_id[retried["id"]]["status"] == "sent"
    assert (by_id[refused["id"]]["status"], by_id[refused["id"]]["reason"]) == (
        "failed",
        "helix_401",
    )
    assert transport(rig).token_refreshes == 1
    assert [s.text for s in rig.accepted()] == ["first", "after a 500"]
    assert 500 in helix_posts(rig)


async def test_a_burst_through_helix_never_breaches(rig: Rig) -> None:
    rig.sim.set_channel("modchan", role="moderator")
    rig.sim.set_channel("vipchan", role="vip")
    channels = ["modchan", "vipchan", "plainone", "plaintwo"]
    commands = [command(channels[n % 4], f"helix {n}", rig.clock) for n in range(80)]
    await publish(rig.nc, *commands)
    records = await all_answered(rig, [c["id"] for c in commands])

    assert rig.sim.breaches == []
    assert Counter(r["status"] for r in records) == {"sent": 80}
    assert len(records) == 80
    privileged = {s.channel for s in rig.accepted() if s.privileged}
    assert privileged == {"modchan", "vipchan"}
    assert rig.channels.is_privileged("modchan") and rig.channels.is_privileged("vipchan")


async def test_a_channel_id_twitch_does_not_know_fails_with_helixs_400(rig: Rig) -> None:
    assert rig.sim.helix is not None
    body = command("plainone", "hi", rig.clock, channel_id="4242")
    await publish(rig.nc, body)
    [record] = await all_answered(rig, [body["id"]])
    # a channelId Twitch does not know: Helix refuses the request (400), nothing sent
    assert (record["status"], record["reason"]) == ("failed", "helix_400")
    assert rig.accepted() == []
