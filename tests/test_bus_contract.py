"""The publisher contract, run against both real drivers (nats-server, Pub/Sub emulator)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import pytest

from ingress_egress.bus.base import OutboundMessage
from tests.support.buses import BusUnderTest

pytestmark = pytest.mark.timeout(120)
CHANNELS = {"alpha": "1001", "beta": "1002", "gamma": "1003"}


def outbound(channel: str, seq: int) -> OutboundMessage:
    envelope_id = f"00000000-0000-4000-8000-{seq:012d}"
    body = {"id": envelope_id, "channel": channel, "seq": seq, "text": 'héllo 🎉 "quoted"'}
    return OutboundMessage(
        data=json.dumps(body, ensure_ascii=False).encode(),
        envelope_id=envelope_id,
        dedup_id=f"twitch-{channel}-{seq}",
        type="external.chat.message.v1",
        traceparent=f"00-{seq:032x}-{seq:016x}-01",
        ordering_key=CHANNELS[channel],
        time="2026-11-22T00:00:00.000Z",
        channel=channel,
    )


async def publish_all(bus: BusUnderTest, messages: list[OutboundMessage]) -> None:
    publisher = bus.publisher()
    await publisher.start()
    assert publisher.connected
    futures = [await publisher.send(message) for message in messages]
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    await publisher.close()
    assert not publisher.connected


async def test_every_message_arrives_once_in_channel_order(bus: BusUnderTest) -> None:
    names = list(CHANNELS)
    messages = [outbound(names[i % 3], i) for i in range(300)]
    await publish_all(bus, messages)
    got = await bus.exactly(300)
    by_channel: dict[str, list[int]] = defaultdict(list)
    for item in got:
        body = json.loads(item.data)
        by_channel[body["channel"]].append(body["seq"])
        assert body["text"] == 'héllo 🎉 "quoted"'
    for channel in names:
        expected = [m for m in range(300) if names[m % 3] == channel]
        assert by_channel[channel] == expected, channel


async def test_metadata_travels_with_each_message(bus: BusUnderTest) -> None:
    message = outbound("beta", 7)
    await publish_all(bus, [message])
    (item,) = await bus.exactly(1)
    assert item.data == message.data
    attributes = item.attributes
    assert attributes["traceparent"] == message.traceparent
    if bus.name == "nats":
        assert attributes["Nats-Msg-Id"] == message.dedup_id
        assert attributes["Envelope-Type"] == message.type
    else:
        assert attributes["type"] == message.type
        assert attributes["id"] == message.envelope_id
        assert attributes["ce-id"] == message.envelope_id
        assert attributes["ce-type"] == message.type
        assert attributes["ce-specversion"] == "1.0"
