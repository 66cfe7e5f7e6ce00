"""The publisher contract, run against both real drivers (nats-server, Pub/Sub emulator)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import pytest

from ingress_egress.bus.base import BusError
from ingress_egress.envelope import OutboundMessage
from tests.support.buses import CONTRACT_CHANNELS, BusUnderTest, outbound

pytestmark = pytest.mark.timeout(120)


async def publish_all(bus: BusUnderTest, messages: list[OutboundMessage]) -> None:
    publisher = bus.publisher()
    await publisher.start()
    assert publisher.connected
    futures = [await publisher.send(message) for message in messages]
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    await publisher.close()
    assert not publisher.connected


async def test_every_message_arrives_once_in_channel_order(bus: BusUnderTest) -> None:
    names = list(CONTRACT_CHANNELS)
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


async def test_send_many_runs_cover_each_slice_and_arrive_in_order(bus: BusUnderTest) -> None:
    """The pipeline's path: one ``send_many`` per slice; its runs account for every message
    of the slice, in order, and their futures are the acks."""
    names = list(CONTRACT_CHANNELS)
    messages = [outbound(names[i % 3], i) for i in range(300)]
    publisher = bus.publisher()
    await publisher.start()
    futures = []
    for start in range(0, len(messages), 64):
        chunk = messages[start : start + 64]
        runs, error = await publisher.send_many(chunk)
        assert error is None
        assert all(n > 0 for _, n in runs) and sum(n for _, n in runs) == len(chunk)
        futures += [future for future, _ in runs]
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    await publisher.close()
    got = [json.loads(item.data)["seq"] for item in await bus.exactly(300)]
    for channel in names:
        expected = [m for m in range(300) if names[m % 3] == channel]
        assert [seq for seq in got if names[seq % 3] == channel] == expected, channel


async def test_send_many_rejects_an_oversize_message_alone(bus: BusUnderTest) -> None:
    messages = [outbound("alpha", i) for i in range(5)]
    messages[2].data = b"x" * (12 * 1024 * 1024)  # beyond NATS max_payload and Pub/Sub's 10 MB
    publisher = bus.publisher()
    await publisher.start()
    runs, error = await publisher.send_many(messages)
    assert error is None and sum(n for _, n in runs) == 5
    outcomes = []
    for future, n in runs:
        try:
            await asyncio.wait_for(future, 30)
            outcomes += ["ok"] * n
        except BusError as rejected:
            assert rejected.permanent and n == 1
            outcomes.append("rejected")
    await publisher.close()
    assert outcomes == ["ok", "ok", "rejected", "ok", "ok"]
    got = [json.loads(item.data)["seq"] for item in await bus.exactly(4)]
    assert got == [0, 1, 3, 4]


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
