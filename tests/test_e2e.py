"""End to end with real components: simulator -> service -> bus (JetStream / Pub/Sub) -> reader."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from ingress_egress.simulator import ChatSimulator
from tests.support.buses import BusUnderTest
from tests.support.schemas import validate_envelope
from tests.support.service import eventually, running, settings_for, wait_status

pytestmark = pytest.mark.timeout(180)
CHANNELS = ("alpha", "beta", "gamma")
COUNT = 600


async def test_every_simulated_message_arrives_once_in_order(bus: BusUnderTest) -> None:
    async with ChatSimulator(count=COUNT, rate=2000) as sim:
        settings = settings_for(bus.settings, sim.port, CHANNELS)
        async with running(settings) as service:
            ready = await wait_status(service, "/readyz", 200)
            assert ready == {"status": "ready"}
            assert await sim.wait_sent(COUNT, timeout=60)
            await eventually(lambda: service.counters.published >= COUNT + 3, 60, "publishes")
            debug = await wait_status(service, "/_debug/twitch", 200)
            assert debug["connected"] is True
            assert debug["joinedChannels"] == sorted(CHANNELS)
            assert debug["identity"] == "anonymous"
            assert debug["counters"]["failed"] == 0

            # One ROOMSTATE per channel on join, then exactly the simulated chat.
            got = await bus.exactly(COUNT + len(CHANNELS))
            envelopes = [json.loads(item.data) for item in got]
            for envelope in envelopes:
                validate_envelope(envelope)
            chat: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for envelope in envelopes:
                if envelope["type"] == "external.chat.message.v1":
                    payload = envelope["payload"]
                    text = payload["text"]
                    if payload["isAction"]:  # the wire form of /me, as the simulator sent it
                        text = f"\x01ACTION {text}\x01"
                    chat[envelope["source"]["channel"]].append((payload["messageId"], text))
            for channel in CHANNELS:
                assert chat[channel] == sim.sent[channel], channel
            assert sum(map(len, chat.values())) == COUNT

            # Readiness follows the Twitch connection.
            await sim.stop()
            not_ready = await wait_status(service, "/readyz", 503)
            assert "not connected to Twitch" in not_ready["reasons"]
