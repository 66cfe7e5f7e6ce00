"""Permanent rejections: the envelope goes to the DLQ with its reason (read back from the
real stream), the finalizer is told when it is reachable, and later messages still flow."""

from __future__ import annotations

import json
from pathlib import Path

import nats
import pytest
from nats.js.api import StreamConfig

from ingress_egress.bus.base import BusError
from ingress_egress.bus.factory import pubsub_publisher
from ingress_egress.config import Settings
from ingress_egress.envelope import OutboundMessage
from ingress_egress.pipeline.dead_letters import (
    DLQ_RECORD_TYPE,
    FAILURE_STATUS_TYPE,
    dead_letter_record,
)
from ingress_egress.simulator import ChatSimulator
from tests.support.nats import NatsHarness, NatsServer
from tests.support.service import eventually, running, settings_for

pytestmark = pytest.mark.timeout(120)


def privmsg(n: int, text: str) -> str:
    return (
        f"@badges=;color=;display-name=A;emotes=;id=aaaaaaaa-0000-4000-8000-{n:012d};"
        f"mod=0;room-id=5;subscriber=0;tmi-sent-ts=1700000000000;user-id=9 "
        f":a!a@a.tmi.twitch.tv PRIVMSG #one :{text}"
    )


@pytest.mark.parametrize("finalizer_stream", [True, False])
@pytest.mark.parametrize("ack_mode", ["batch", "each"])
async def test_an_oversize_envelope_is_dead_lettered_with_its_reason(
    tmp_path: Path, ack_mode: str, finalizer_stream: bool
) -> None:
    server = NatsServer(tmp_path, config="max_payload: 4096\n").start()
    try:
        base = Settings.defaults(
            message_bus_driver="nats", nats_url=server.url, nats_ack_mode=ack_mode
        )
        if finalizer_stream:
            nc = await nats.connect(server.url)
            await nc.jetstream().add_stream(
                StreamConfig(name="FINALIZER", subjects=[base.bus.finalizer_subject])
            )
            await nc.close()
        lines = [privmsg(1, "before"), privmsg(2, "x" * 5000), privmsg(3, "after")]
        async with ChatSimulator(replay_lines=lines) as sim:
            settings = settings_for(base, sim.port, ("one",), spool_dir=str(tmp_path / "spool"))
            async with running(settings) as service:
                await eventually(lambda: service.counters.published >= 3, 30, "good ones")
                await eventually(
                    lambda: (
                        service.counters.finalizer_statuses + service.counters.finalizer_unreachable
                        >= 1
                    ),
                    30,
                    "finalizer attempt",
                )
                counters = service.counters
                assert (counters.failed, counters.dead_lettered) == (1, 1)
                debug = service.view.debug_snapshot()
                assert debug["counters"]["deadLettered"] == 1
                assert any(e["code"] == "publish_failed" for e in debug["recentErrors"])
                if finalizer_stream:
                    assert (counters.finalizer_statuses, counters.finalizer_unreachable) == (1, 0)
                else:
                    assert (counters.finalizer_statuses, counters.finalizer_unreachable) == (0, 1)
                    assert (
                        "no JetStream stream" in debug["queue"]["deadLetters"]["finalizerLastError"]
                    )
        (dead,) = await NatsHarness(server.url, "INGRESS", base.bus.dlq_subject).received(1)
        record = json.loads(dead.data)
        assert record["type"] == DLQ_RECORD_TYPE
        assert "max_payload" in record["reason"]
        assert record["permanent"] is True
        assert record["messageId"] == "aaaaaaaa-0000-4000-8000-000000000002"
        assert record["destination"] == base.bus.ingress_subject
        assert record["envelope"] is None  # too large to embed: described instead
        assert record["envelopeBytes"] > 4096
        assert record["envelopePreview"].startswith("{")
        assert dead.attributes["Nats-Msg-Id"] == f"dlq:{record['messageId']}"
        stored = await NatsHarness(server.url, "INGRESS", base.bus.ingress_subject).received(3)
        texts = [json.loads(m.data)["payload"].get("text") for m in stored]
        assert texts[-2:] == ["before", "after"]  # order kept around the rejected one
        if finalizer_stream:
            (status,) = await NatsHarness(
                server.url, "FINALIZER", base.bus.finalizer_subject
            ).received(1)
            body = json.loads(status.data)
            assert body["type"] == FAILURE_STATUS_TYPE
            assert body["status"] == "failed"
            assert body["messageId"] == record["messageId"]
            assert body["deadLetter"] == base.bus.dlq_subject
            assert "max_payload" in body["reason"]
    finally:
        server.stop()


def test_a_small_envelope_is_embedded_whole_in_its_dead_letter() -> None:
    envelope = {"id": "e1", "payload": {"messageId": "m1", "text": "héllo"}}
    data = json.dumps(envelope, ensure_ascii=False).encode()
    message = OutboundMessage(
        data=data,
        envelope_id="e1",
        dedup_id="m1",
        type="external.chat.message.v1",
        traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        ordering_key="5",
        time="2026-11-22T00:00:00.000Z",
        channel="one",
    )
    record = json.loads(dead_letter_record(message, "invalid", 2, "internal.ingress.v1", 0.0))
    assert record["envelope"] == envelope
    assert record["attempts"] == 2
    assert record["traceId"] == "a" * 32
    assert record["deadLetteredAt"] == "1970-01-01T00:00:00.000Z"


async def test_pubsub_side_destinations_reachable_or_permanently_not(pubsub) -> None:
    """Pub/Sub: a dead letter reaches an existing topic with its id attribute; a topic that
    does not exist (no finalizer deployed) is a permanent, countable failure."""
    settings = pubsub.settings()
    pubsub.create_topic()
    dlq_topic = f"projects/{pubsub.project}/topics/{settings.bus.dlq_subject}"
    pubsub.publisher.create_topic(request={"name": dlq_topic})
    subscription = f"projects/{pubsub.project}/subscriptions/{pubsub.prefix}dlq"
    pubsub.subscriber.create_subscription(request={"name": subscription, "topic": dlq_topic})
    pubsub.subscription = subscription
    publisher = pubsub_publisher(settings)
    await publisher.start()
    try:
        await publisher.publish_to(
            settings.bus.dlq_subject,
            b'{"type":"x"}',
            message_id="dlq:m1",
            event_type=DLQ_RECORD_TYPE,
        )
        (got,) = await pubsub.received(1, 30)
        assert got.data == b'{"type":"x"}'
        assert got.attributes == {"id": "dlq:m1", "type": DLQ_RECORD_TYPE}
        with pytest.raises(BusError) as failure:
            await publisher.publish_to(
                settings.bus.finalizer_subject,
                b"{}",
                message_id="f",
                event_type=FAILURE_STATUS_TYPE,
            )
        assert failure.value.permanent
        assert "does not exist" in str(failure.value)
    finally:
        await publisher.close()
