"""The bus goes away mid-stream and comes back: nothing is lost, nothing is stored twice.

Real nats-server, killed (SIGKILL) and restarted on the same port and store by the test;
both ack modes, with and without the spool: messages read during the outage wait and are
delivered later, in order. The 30 s / 1,000 msg/s outage is tests/test_delivery.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingress_egress.config import Settings
from ingress_egress.simulator import ChatSimulator
from tests.support.nats import NatsHarness, NatsServer
from tests.support.service import eventually, running, settings_for

pytestmark = pytest.mark.timeout(180)
CHANNELS = ("alpha", "beta")
COUNT = 1500


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
@pytest.mark.parametrize("ack_mode", ["batch", "each"])
async def test_bus_outage_loses_nothing_and_duplicates_nothing(
    nats_server: NatsServer, ack_mode: str, spooled: bool, tmp_path: Path
) -> None:
    base = Settings.defaults(
        message_bus_driver="nats",
        nats_url=nats_server.url,
        nats_ack_mode=ack_mode,
        publish_max_retries=8,
        spool_dir=str(tmp_path / "spool") if spooled else "",
    )
    async with ChatSimulator(count=COUNT, rate=500) as sim:
        settings = settings_for(base, sim.port, CHANNELS)
        async with running(settings) as service:
            service.pipeline.ack_timeout_s = 2.0
            await eventually(lambda: service.counters.published >= 300, 30, "first acks")
            nats_server.kill()
            await eventually(lambda: not service.publisher.connected, 10, "bus seen down")
            assert "bus not connected" in " ".join(service.view.readiness())
            # Two seconds of chat (500 msg/s), or the rest of it, pile up behind the outage.
            piled_up = min(service.counters.received + 1000, COUNT)
            await eventually(lambda: service.counters.received >= piled_up, 30, "chat while down")
            nats_server.start()
            assert await sim.wait_sent(COUNT, timeout=60)
            # Every chat message read (and each channel's ROOMSTATE: one per JOIN) is acked.
            joins = len(CHANNELS) * (1 + service.state.reconnects)
            await eventually(
                lambda: (
                    service.counters.published >= COUNT + joins
                    and service.pipeline.depth == 0
                    and service.pipeline.in_flight == 0
                ),
                90,
                "all acked",
            )
            assert service.counters.failed == 0
    stored = await NatsHarness(nats_server.url, "INGRESS", base.bus.ingress_subject).received(
        COUNT + len(CHANNELS)
    )
    ids = [json.loads(item.data)["id"] for item in stored]
    assert len(ids) == len(set(ids))  # nothing stored twice
    by_channel: dict[str, list[str]] = {}
    for item in stored:
        envelope = json.loads(item.data)
        if envelope["type"] == "external.chat.message.v1":
            by_channel.setdefault(envelope["source"]["channel"], []).append(
                envelope["payload"]["messageId"]
            )
    for channel in CHANNELS:  # every message, once, in the order it was sent
        assert by_channel[channel] == [mid for mid, _ in sim.sent[channel]]


def test_settings_default_to_batched_acks() -> None:
    assert Settings.defaults().bus.nats_ack_mode == "batch"
