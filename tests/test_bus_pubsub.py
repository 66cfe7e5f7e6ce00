"""The Pub/Sub driver against the real Pub/Sub emulator from the Google Cloud CLI."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions
from google.cloud.pubsub_v1.publisher import exceptions as publisher_exceptions

from ingress_egress.bus.base import BusError
from ingress_egress.bus.factory import pubsub_publisher
from ingress_egress.bus.pubsub import PubSubPublisher, classify, message_attributes, topic_path
from ingress_egress.config import Settings
from ingress_egress.envelope import OutboundMessage
from tests.support.pubsub_emulator import PubSubHarness

pytestmark = pytest.mark.timeout(120)

CHANNELS = {"forsen": "22484632", "xqc": "71092938", "lirik": "23161357"}
_counter = itertools.count(1)


def envelope(channel: str, text: str = "hi", *, pad: int = 0) -> OutboundMessage:
    seq = next(_counter)
    envelope_id = str(uuid.uuid4())
    message_id = str(uuid.uuid4())
    trace_id = uuid.uuid4().hex
    body = {
        "id": envelope_id,
        "type": "external.chat.message.v1",
        "time": f"2025-01-01T00:00:{seq % 60:02d}.000Z",
        "traceId": trace_id,
        "payload": {"channel": channel, "text": text, "seq": seq, "messageId": message_id},
    }
    if pad:
        body["pad"] = "x" * pad
    return OutboundMessage(
        data=json.dumps(body, separators=(",", ":")).encode(),
        envelope_id=envelope_id,
        dedup_id=message_id,
        type="external.chat.message.v1",
        traceparent=f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01",
        ordering_key=CHANNELS.get(channel, channel),
        time=body["time"],
        channel=channel,
        received_at=time.monotonic(),
    )


def expected_attributes(message: OutboundMessage) -> dict[str, str]:
    return {
        "type": message.type,
        "id": message.envelope_id,
        "traceparent": message.traceparent,
        "ce-specversion": "1.0",
        "ce-type": message.type,
        "ce-source": f"//twitch.tv/{message.channel}",
        "ce-id": message.envelope_id,
        "ce-time": message.time,
    }


async def started(settings: Settings, **kwargs: Any) -> PubSubPublisher:
    publisher = pubsub_publisher(settings, **kwargs)
    await publisher.start()
    return publisher


@pytest.mark.emulator
async def test_interleaved_channels_arrive_complete_with_attributes_and_in_order(
    pubsub: PubSubHarness,
) -> None:
    pubsub.create_topic()
    pubsub.subscribe()
    publisher = await started(pubsub.settings())
    assert publisher.connected
    sent = [envelope(channel) for _ in range(100) for channel in CHANNELS]  # 300 interleaved
    futures = [await publisher.send(message) for message in sent]
    ids = await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert all(isinstance(message_id, str) and message_id for message_id in ids)
    assert len(set(ids)) == len(sent)

    got = await pubsub.received(len(sent), timeout=30)
    assert len(got) == len(sent)
    assert await pubsub.received(1, timeout=0.5) == []  # nothing extra (no duplicates here)

    by_id = {message.envelope_id: message for message in sent}
    for item in got:
        message = by_id[item.attributes["id"]]
        assert item.data == message.data
        assert item.attributes == expected_attributes(message)
    order: dict[str, list[str]] = defaultdict(list)
    for item in got:
        order[item.attributes["ce-source"]].append(item.attributes["id"])
    for channel in CHANNELS:
        want = [m.envelope_id for m in sent if m.channel == channel]
        assert order[f"//twitch.tv/{channel}"] == want, f"{channel} out of order"

    assert publisher.describe()["published"] == len(sent)
    assert publisher.describe()["pending"] == 0
    await publisher.close()


@pytest.mark.emulator
async def test_missing_topic_without_create_flag_fails_start_with_reason(
    pubsub: PubSubHarness,
) -> None:
    publisher = pubsub_publisher(pubsub.settings(pubsub_create_topic=False))
    with pytest.raises(BusError) as caught:
        await publisher.start()
    reason = str(caught.value)
    assert pubsub.topic in reason
    assert "does not exist" in reason
    assert "PUBSUB_CREATE_TOPIC" in reason
    assert caught.value.permanent
    assert not publisher.connected
    assert publisher.describe()["last_error"] == reason
    assert not pubsub.topic_exists()  # and it did not create it
    with pytest.raises(BusError, match="not started"):
        await publisher.send(envelope("forsen"))
    await publisher.close()


@pytest.mark.emulator
async def test_create_flag_creates_missing_topic_and_accepts_existing(
    pubsub: PubSubHarness,
) -> None:
    assert not pubsub.topic_exists()
    publisher = await started(pubsub.settings(pubsub_create_topic=True))
    assert pubsub.topic_exists()
    assert publisher.connected
    pubsub.subscribe()
    again = await started(pubsub.settings(pubsub_create_topic=True))  # AlreadyExists is fine
    message = envelope("xqc")
    assert await (await again.send(message))
    [item] = await pubsub.received(1, timeout=10)
    assert item.data == message.data
    await publisher.close()
    await again.close()


@pytest.mark.emulator
async def test_invalid_topic_name_is_rejected_before_any_rpc(pubsub: PubSubHarness) -> None:
    publisher = pubsub_publisher(pubsub.settings(bus_prefix="9"), topic="9x")
    with pytest.raises(BusError, match="invalid Pub/Sub topic id '9x'") as caught:
        await publisher.start()
    assert caught.value.permanent
    no_project = pubsub_publisher(pubsub.settings(google_cloud_project=""))
    with pytest.raises(BusError, match="GOOGLE_CLOUD_PROJECT"):
        await no_project.start()


@pytest.mark.emulator
async def test_oversize_message_fails_permanently_and_does_not_stall_its_channel(
    pubsub: PubSubHarness,
) -> None:
    pubsub.create_topic()
    pubsub.subscribe()
    publisher = await started(pubsub.settings())
    huge = envelope("forsen", pad=10_000_001)
    failed = await publisher.send(huge)
    with pytest.raises(BusError, match="too large") as caught:
        await failed
    assert caught.value.permanent

    long_attribute = envelope("forsen")
    long_attribute.traceparent = "0" * 2000
    with pytest.raises(BusError, match="traceparent") as caught:
        await (await publisher.send(long_attribute))
    assert caught.value.permanent

    after = envelope("forsen")
    assert await asyncio.wait_for(await publisher.send(after), 10)
    got = await pubsub.received(1, timeout=10)
    assert [item.data for item in got] == [after.data]
    assert "traceparent" in publisher.describe()["last_error"]
    assert publisher.describe()["failed"] == 2
    await publisher.close()


@pytest.mark.emulator
async def test_failed_ordered_publish_is_resumed_so_the_channel_keeps_flowing(
    pubsub: PubSubHarness,
) -> None:
    """A real failure on a key (topic deleted -> NotFound) pauses the key in the client.

    Without ``resume_publish`` every later publish on that key would fail at once with
    PublishToPausedOrderingKeyException.
    """
    pubsub.create_topic()
    publisher = await started(pubsub.settings())
    assert await (await publisher.send(envelope("lirik")))

    await asyncio.to_thread(pubsub.delete_topic)
    lost = await publisher.send(envelope("lirik"))
    with pytest.raises(BusError, match="not found") as caught:
        await asyncio.wait_for(lost, 10)
    assert not caught.value.permanent

    await asyncio.to_thread(pubsub.create_topic)
    pubsub.subscribe(f"{pubsub.prefix}sub2")
    later = [envelope("lirik") for _ in range(3)]
    futures = [await publisher.send(message) for message in later]
    assert all(await asyncio.wait_for(asyncio.gather(*futures), 10))
    got = await pubsub.received(3, timeout=10)
    assert [item.data for item in got] == [message.data for message in later]
    assert publisher.describe()["resumed_keys"] >= 1
    await publisher.close()


@pytest.mark.emulator
async def test_unresponsive_server_times_out_per_publish_then_the_key_recovers(
    pubsub: PubSubHarness,
) -> None:
    """Freeze the emulator: the publish must fail after ``publish_timeout`` (the client
    would otherwise retry an ordered publish for ~forever), transiently; a message queued
    behind it on the same key is cancelled transiently; after thaw the key works again."""
    pubsub.create_topic()
    pubsub.subscribe()
    publisher = await started(pubsub.settings(), publish_timeout=1.0)
    assert await (await publisher.send(envelope("xqc")))  # channel is connected and warm
    await pubsub.received(1, timeout=10)

    with pubsub.emulator.frozen():
        started_at = time.monotonic()
        stuck = await publisher.send(envelope("xqc"))
        await asyncio.sleep(0.1)  # fixed wait: batch 1 leaves alone on a 10 ms timer thread
        queued = await publisher.send(envelope("xqc"))
        with pytest.raises(BusError) as caught:
            await asyncio.wait_for(stuck, 10)
        elapsed = time.monotonic() - started_at
        assert not caught.value.permanent
        assert "DeadlineExceeded" in str(caught.value) or "Deadline" in str(caught.value)
        assert elapsed < 5
        with pytest.raises(BusError) as queued_error:
            await asyncio.wait_for(queued, 5)
        assert not queued_error.value.permanent

    after = envelope("xqc")
    assert await asyncio.wait_for(await publisher.send(after), 10)
    # The frozen request may still land after the thaw (Pub/Sub is at-least-once), and
    # before ``after``: same key, same order. The cancelled one was never sent.
    got = [item.data for item in await pubsub.received(1, timeout=10)]
    if got[-1] != after.data:
        got += [item.data for item in await pubsub.received(1, timeout=10)]
    assert got[-1] == after.data
    # Nothing else follows: the next message on the key is a marker sent after ``after``.
    marker = envelope("xqc")
    assert await asyncio.wait_for(await publisher.send(marker), 10)
    assert [item.data for item in await pubsub.received(1, timeout=10)] == [marker.data]
    await publisher.close()


@pytest.mark.emulator
async def test_close_flushes_in_flight_publishes(pubsub: PubSubHarness) -> None:
    pubsub.create_topic()
    pubsub.subscribe()
    publisher = await started(pubsub.settings())
    sent = [envelope(channel) for _ in range(50) for channel in CHANNELS]
    futures = [await publisher.send(message) for message in sent]
    assert publisher.describe()["pending"] > 0
    await publisher.close()
    assert all(future.done() and not future.exception() for future in futures)
    assert not publisher.connected
    with pytest.raises(BusError, match="closed"):
        await publisher.send(envelope("forsen"))
    got = await pubsub.received(len(sent), timeout=20)
    assert sorted(item.attributes["id"] for item in got) == sorted(m.envelope_id for m in sent)


@pytest.mark.emulator
async def test_describe_has_state_and_no_secrets(pubsub: PubSubHarness) -> None:
    pubsub.create_topic()
    settings = pubsub.settings(twitch_oauth_token="oauth:secret-token", twitch_client_secret="s3")
    publisher = await started(settings)
    state = publisher.describe()
    assert state["driver"] == "pubsub"
    assert state["connected"] is True
    assert state["topic"] == pubsub.topic
    assert state["ordering"] is True
    assert state["pending"] == 0
    assert state["last_error"] is None
    assert state["emulator"] == pubsub.emulator.host
    assert "secret" not in json.dumps(state) and "s3" not in json.dumps(state)
    await publisher.close()
    assert publisher.describe()["connected"] is False


@pytest.mark.emulator
async def test_topic_override_publishes_to_that_topic(pubsub: PubSubHarness) -> None:
    settings = pubsub.settings(pubsub_create_topic=True)
    publisher = await started(settings, topic=settings.bus.dlq_subject)
    assert publisher.describe()["topic"] == topic_path(pubsub.project, settings.bus.dlq_subject)
    assert publisher.describe()["topic"].endswith(f"{pubsub.prefix}internal.ingress.dlq.v1")
    assert not pubsub.topic_exists()  # the ingress topic was not touched
    await publisher.close()


def test_attributes_skip_empty_optional_values() -> None:
    message = envelope("forsen")
    message.traceparent = ""
    message.time = ""
    message.channel = ""
    attributes = message_attributes(message)
    assert "traceparent" not in attributes and "ce-time" not in attributes
    assert attributes["ce-source"] == "//twitch.tv"
    assert attributes["type"] == attributes["ce-type"] == message.type
    assert attributes["id"] == attributes["ce-id"] == message.envelope_id


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (api_exceptions.InvalidArgument("bad"), True),
        (publisher_exceptions.MessageTooLargeError("big"), True),
        (api_exceptions.ServiceUnavailable("down"), False),
        (api_exceptions.DeadlineExceeded("slow"), False),
        (api_exceptions.ResourceExhausted("quota"), False),
        (api_exceptions.InternalServerError("oops"), False),
        (api_exceptions.NotFound("gone"), False),
        (publisher_exceptions.PublishToPausedOrderingKeyException("k"), False),
        (publisher_exceptions.FlowControlLimitError("full"), False),
        (RuntimeError("Batch cancelled because prior ordered message ... failed"), False),
    ],
)
def test_classify_permanent_vs_transient(error: BaseException, permanent: bool) -> None:
    mapped = classify(error, "projects/p/topics/t")
    assert isinstance(mapped, BusError)
    assert mapped.permanent is permanent
    assert str(mapped)
