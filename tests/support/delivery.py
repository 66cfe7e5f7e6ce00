"""What a delivery test compares: the chat message ids the simulator sent and the ones the
bus stored (or the memory publisher received), per channel, in order."""

from __future__ import annotations

import json
from collections import defaultdict

import orjson

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings
from ingress_egress.service import Service
from ingress_egress.simulator import ChatSimulator
from tests.support.nats import NatsHarness, Received

CHANNELS = ("alpha", "beta", "gamma")
CHAT = "external.chat.message.v1"


def sent_ids(sim: ChatSimulator) -> dict[str, list[str]]:
    """The chat message ids the simulator sent, per channel, in send order."""
    return {channel: [mid for mid, _ in items] for channel, items in sim.sent.items() if items}


def published_chat_ids(publisher: MemoryPublisher) -> dict[str, list[str]]:
    """The chat message ids a memory publisher received, per channel, in publish order."""
    out: dict[str, list[str]] = {}
    for message in publisher.messages:
        if message.type == CHAT:
            out.setdefault(message.channel, []).append(
                orjson.loads(message.data)["payload"]["messageId"]
            )
    return out


def chat_ids_by_channel(stored: list[Received]) -> dict[str, list[str]]:
    """Chat message ids in stream order, per channel; fails on any envelope stored twice."""
    ids = [json.loads(item.data)["id"] for item in stored]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} envelopes stored twice"
    by_channel: dict[str, list[str]] = defaultdict(list)
    for item in stored:
        envelope = json.loads(item.data)
        if envelope["type"] == CHAT:
            by_channel[envelope["source"]["channel"]].append(envelope["payload"]["messageId"])
    return by_channel


def assert_same(stored: dict[str, list[str]], sent: dict[str, list[str]]) -> None:
    """Each channel's stored ids are exactly the sent ones, in the same order."""
    assert set(stored) == set(sent)
    for channel, ids in sent.items():
        got = stored[channel]
        missing = set(ids) - set(got)
        assert not missing, f"{channel}: {len(missing)} of {len(ids)} missing"
        assert len(got) == len(ids), f"{channel}: {len(got) - len(ids)} unexpected"
        first = next((i for i, (a, b) in enumerate(zip(got, ids, strict=True)) if a != b), None)
        assert first is None, f"{channel}: order differs from position {first}"


def settled(service: Service) -> bool:
    """Nothing queued and nothing awaiting an acknowledgement."""
    pipeline = service.pipeline
    return pipeline.depth == 0 and pipeline.in_flight == 0


def all_published(service: Service, count: int, channels: int = len(CHANNELS)) -> bool:
    """Every chat message (and one ROOMSTATE per channel) acknowledged, nothing held."""
    return service.counters.published >= count + channels and settled(service)


async def stored_chat(url: str, settings: Settings, at_least: int) -> dict[str, list[str]]:
    """The chat ids in the settings' JetStream stream, once at least ``at_least`` are there."""
    harness = NatsHarness(url, settings.bus.nats_stream, settings.bus.ingress_subject)
    return chat_ids_by_channel(await harness.received(at_least, timeout=60, settle=1.0))
