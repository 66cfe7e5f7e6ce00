"""Shared fixtures: real servers on 127.0.0.1, free ports, stopped by PID."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingress_egress.config import Settings
from tests.support.buses import BusUnderTest
from tests.support.nats import NatsHarness, NatsServer
from tests.support.pubsub_emulator import pubsub_emulator_fixture, pubsub_fixture  # noqa: F401


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["nats", "nats-ack-each", "pubsub"])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BusUnderTest]:
    """A real, empty bus of each kind, with a reader for what was published to it."""
    if request.param.startswith("nats"):
        server = NatsServer(tmp_path).start()
        settings = Settings.defaults(
            message_bus_driver="nats",
            nats_url=server.url,
            nats_stream="INGRESS",
            nats_ack_mode="each" if request.param == "nats-ack-each" else "batch",
        )
        reader = NatsHarness(server.url, "INGRESS", settings.bus.ingress_subject)
        try:
            yield BusUnderTest("nats", settings, reader.received)
        finally:
            server.stop()
        return
    harness = request.getfixturevalue("pubsub")
    harness.create_topic()
    harness.subscribe()
    yield BusUnderTest("pubsub", harness.settings(message_bus_driver="pubsub"), harness.received)
