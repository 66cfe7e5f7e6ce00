"""Egress on Pub/Sub: the command source and the result publisher against the real emulator."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_protocol import DestinationMissing, ReceivedCommand
from ingress_egress.bus.egress_pubsub import PubSubCommandSource
from ingress_egress.bus.egress_pubsub_results import PubSubResultPublisher
from tests.support.pubsub_emulator import PubSubHarness
from tests.support.service import eventually

pytestmark = [pytest.mark.timeout(120), pytest.mark.emulator]


def command(text: str = "hi") -> bytes:
    return json.dumps({"id": str(uuid.uuid4()), "payload": {"text": text}}).encode()


def topic(pubsub: PubSubHarness, name: str) -> str:
    return f"projects/{pubsub.project}/topics/{pubsub.prefix}{name}"


def subscription(pubsub: PubSubHarness, name: str) -> str:
    return f"projects/{pubsub.project}/subscriptions/{pubsub.prefix}{name}"


def new_source(pubsub: PubSubHarness, *, create: bool = True) -> PubSubCommandSource:
    return PubSubCommandSource(
        pubsub.project,
        prefix=pubsub.prefix,
        subscription=f"{pubsub.prefix}egress",
        create=create,
    )


@pytest.fixture
async def source(pubsub: PubSubHarness) -> AsyncIterator[PubSubCommandSource]:
    started = new_source(pubsub)
    await started.start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def results(pubsub: PubSubHarness) -> AsyncIterator[PubSubResultPublisher]:
    publisher = PubSubResultPublisher(pubsub.project, prefix=pubsub.prefix)
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.close()


async def publish_command(pubsub: PubSubHarness, data: bytes) -> None:
    future = pubsub.publisher.publish(topic(pubsub, "internal.egress.v1"), data)
    await asyncio.to_thread(future.result, 30)


async def receive_until(
    source: PubSubCommandSource, wanted: int, attempts: int = 20
) -> list[ReceivedCommand]:
    got: list[ReceivedCommand] = []
    for _ in range(attempts):
        got += await source.receive(wanted - len(got), timeout_s=1.0)
        if len(got) >= wanted:
            return got
    raise AssertionError(f"received {len(got)} of {wanted} commands")


def platform_topic(pubsub: PubSubHarness, name: str) -> None:
    """A destination as the platform creates it: its topic and its consumer's subscription,
    which the harness then reads."""
    pubsub.publisher.create_topic(request={"name": topic(pubsub, name)})
    pubsub.subscription = subscription(pubsub, f"{name}-reader")
    pubsub.subscriber.create_subscription(
        request={"name": pubsub.subscription, "topic": topic(pubsub, name)}
    )


async def test_the_subscription_is_created_only_when_allowed(pubsub: PubSubHarness) -> None:
    refused = new_source(pubsub, create=False)
    with pytest.raises(BusError, match="does not exist") as raised:
        await refused.start()
    assert raised.value.permanent
    assert refused.describe()["lastError"].startswith("Pub/Sub subscription")
    await refused.close()

    source = new_source(pubsub)
    await source.start()
    try:
        egress_topic = topic(pubsub, "internal.egress.v1")
        assert source.describe()["created"] == [egress_topic, subscription(pubsub, "egress")]
        created = pubsub.subscriber.get_subscription(
            request={"subscription": subscription(pubsub, "egress")}
        )
        assert created.topic == egress_topic
        assert created.enable_message_ordering
        assert created.ack_deadline_seconds == 30
    finally:
        await source.close()
    again = new_source(pubsub, create=False)  # infra's subscription: used as it is
    await again.start()
    assert again.connected and again.describe()["created"] == []
    await again.close()


async def test_a_subscription_on_another_topic_is_refused(pubsub: PubSubHarness) -> None:
    pubsub.create_topic()  # the ingress topic
    pubsub.subscribe(f"{pubsub.prefix}egress")
    source = new_source(pubsub)
    with pytest.raises(BusError, match="not projects/") as raised:
        await source.start()
    assert raised.value.permanent
    await source.close()


async def test_ack_nack_and_redelivery(pubsub: PubSubHarness, source: PubSubCommandSource) -> None:
    acked, naked = command("one"), command("two")
    await publish_command(pubsub, acked)
    await publish_command(pubsub, naked)
    first = sorted(await receive_until(source, 2), key=lambda item: item.data != acked)
    assert [item.data for item in first] == [acked, naked]
    assert [item.delivery for item in first] == [1, 1]
    await first[0].ack()
    await first[1].nak()
    [again] = await receive_until(source, 1)
    assert (again.data, again.delivery, again.bus_id) == (naked, 2, first[1].bus_id)
    await again.in_progress()
    await again.ack()
    marker = command("marker")
    await publish_command(pubsub, marker)
    [later] = await receive_until(source, 1)
    assert later.data == marker  # neither acked command came back before it
    await later.term()
    described = source.describe()
    assert (described["acked"], described["naked"], described["termed"]) == (2, 1, 1)
    assert (described["redelivered"], described["outstanding"]) == (1, 0)


async def test_a_delayed_nack_comes_back(
    pubsub: PubSubHarness, source: PubSubCommandSource
) -> None:
    data = command()
    await publish_command(pubsub, data)
    [held] = await receive_until(source, 1)
    await held.nak(delay_s=1.0)
    [again] = await receive_until(source, 1)
    assert (again.data, again.delivery) == (data, 2)
    await again.ack()


async def test_a_deleted_subscription_is_reported_and_survived(
    pubsub: PubSubHarness, source: PubSubCommandSource
) -> None:
    pubsub.subscriber.delete_subscription(request={"subscription": subscription(pubsub, "egress")})

    async def reported() -> bool:
        assert await source.receive(1, timeout_s=0.5) == []
        return "does not exist" in source.describe()["lastError"]

    await eventually(reported, 20, "missing subscription reported")
    assert not source.connected
    pubsub.subscriber.create_subscription(  # infra puts it back
        request={
            "name": subscription(pubsub, "egress"),
            "topic": topic(pubsub, "internal.egress.v1"),
        }
    )
    data = command()
    await publish_command(pubsub, data)
    [received] = await receive_until(source, 1)
    assert received.data == data
    assert source.connected
    await received.ack()


async def test_results_wait_for_their_topic(
    pubsub: PubSubHarness, results: PubSubResultPublisher
) -> None:
    record = b'{"type":"internal.finalizer.status.v1","status":"sent"}'
    with pytest.raises(DestinationMissing) as missing:
        await results.publish_result(record, message_id="c1:ingress-egress:egress")
    assert missing.value.subject == f"{pubsub.prefix}internal.finalizer.v1"
    assert not missing.value.permanent
    platform_topic(pubsub, "internal.finalizer.v1")
    published = await results.publish_result(record, message_id="c1:ingress-egress:egress")
    assert published.subject == f"{pubsub.prefix}internal.finalizer.v1" and published.bus_id
    [received] = await pubsub.received(1, timeout=30)
    assert received.data == record
    assert received.attributes == {
        "id": "c1:ingress-egress:egress",
        "type": "internal.finalizer.status.v1",
    }
    assert results.describe()["destinationMissing"] == 1


async def test_an_unreadable_command_is_dead_lettered(
    pubsub: PubSubHarness, source: PubSubCommandSource, results: PubSubResultPublisher
) -> None:
    platform_topic(pubsub, "internal.egress.dlq.v1")
    garbage = b'{"id": "c2", "type": "egress.chat.message.v1", "payload": 5}'
    await publish_command(pubsub, garbage)
    [received] = await receive_until(source, 1)
    await results.publish_dead_letter(received, "payload is not an object")
    await received.term()
    [letter] = await pubsub.received(1, timeout=30)
    record = json.loads(letter.data)
    assert (record["id"], record["reason"], record["attempts"]) == (
        "c2",
        "payload is not an object",
        1,
    )
    assert record["command"] == json.loads(garbage)
    assert letter.attributes == {
        "id": f"dlq:{received.bus_id}",
        "type": "internal.egress.dlq.v1",
    }
