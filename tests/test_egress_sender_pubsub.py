"""The egress sender on the Pub/Sub variant: the real Pub/Sub and Firestore emulators (the
ledger in Firestore), the simulator over real IRC sockets, one clock at 20x real time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest

from ingress_egress.bus.egress_pubsub import PubSubCommandSource
from ingress_egress.bus.egress_pubsub_results import PubSubResultPublisher
from ingress_egress.egress.channel_state import ChannelStates
from ingress_egress.egress.ledger_firestore import FirestoreLedger
from ingress_egress.egress.limits import SendLimiter
from ingress_egress.egress.sender import EgressSender, SenderSettings
from ingress_egress.egress.transport import ScaledClock
from ingress_egress.simulator import ChatSimulator
from tests.support.egress import BOT, RATE, command, irc_transport
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixture
    FirestoreEmulator,
    firestore_emulator_fixture,
)
from tests.support.pubsub_emulator import PubSubHarness

pytestmark = [pytest.mark.timeout(180), pytest.mark.emulator]


def topic(pubsub: PubSubHarness, name: str) -> str:
    return f"projects/{pubsub.project}/topics/{pubsub.prefix}{name}"


def finalizer_topic(pubsub: PubSubHarness) -> None:
    """The finalizer's topic and subscription, as the platform creates them."""
    name = "internal.finalizer.v1"
    pubsub.publisher.create_topic(request={"name": topic(pubsub, name)})
    pubsub.subscription = f"projects/{pubsub.project}/subscriptions/{pubsub.prefix}finalizer"
    pubsub.subscriber.create_subscription(
        request={"name": pubsub.subscription, "topic": topic(pubsub, name)}
    )


async def publish(pubsub: PubSubHarness, body: dict[str, Any]) -> None:
    future = pubsub.publisher.publish(topic(pubsub, "internal.egress.v1"), orjson.dumps(body))
    await asyncio.to_thread(future.result, 30)


async def results_for(pubsub: PubSubHarness, ids: set[str]) -> list[dict[str, Any]]:
    """Result records until every id in ``ids`` has one (Pub/Sub may deliver one twice)."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while {r["envelopeId"] for r in got} < ids and time.monotonic() < deadline:
        got += [orjson.loads(m.data) for m in await pubsub.received(1000, timeout=1.0)]
    return got


async def test_a_burst_over_pubsub_with_the_ledger_in_firestore(
    pubsub: PubSubHarness, firestore_emulator: FirestoreEmulator
) -> None:
    finalizer_topic(pubsub)
    clock = ScaledClock(RATE)
    sim = ChatSimulator(count=0, bots=[BOT], clock=clock.monotonic, lockout_s=3600.0)
    await sim.start()
    sim.set_channel("modchan", role="moderator")
    channels = ChannelStates(BOT.login)
    sender = EgressSender(
        PubSubCommandSource(
            pubsub.project, prefix=pubsub.prefix, subscription=f"{pubsub.prefix}egress", create=True
        ),
        PubSubResultPublisher(pubsub.project, prefix=pubsub.prefix),
        irc_transport(sim, channels, clock),
        FirestoreLedger(firestore_emulator.client(), f"t{uuid.uuid4().hex[:8]}", ttl_s=600),
        channels,
        SendLimiter(),
        SenderSettings(bus_prefix=pubsub.prefix, identity=BOT.login, max_age_s=100_000.0),
        clock=clock.sender_clock(),
    )
    try:
        await sender.start()
        commands = [
            command(("modchan", "plainone", "plaintwo")[n % 3], f"pubsub {n}", clock)
            for n in range(30)
        ]
        for body in [*commands, commands[4]]:  # one of them published twice
            await publish(pubsub, body)
        records = await results_for(pubsub, {c["id"] for c in commands})
    finally:
        await sender.stop()
        await sim.stop()

    assert sim.breaches == []
    texts = [s.text for s in sim.bot_sends]
    assert sorted(texts) == sorted(c["payload"]["text"] for c in commands)  # each once
    by_command: dict[str, set[bytes]] = {}
    for record in records:  # a copy delivered again is the very same record
        by_command.setdefault(record["envelopeId"], set()).add(
            orjson.dumps({k: v for k, v in record.items() if k != "timestamp"})
        )
    assert len(by_command) == 30 and all(len(v) == 1 for v in by_command.values())
    assert Counter(r["status"] for r in records if r["envelopeId"] != commands[4]["id"]) == {
        "sent": 29
    }
