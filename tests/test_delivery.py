"""Delivery guarantees in-process, against a real nats-server (JetStream file storage) and the
chat simulator: a 30 s bus outage and a slow bus lose nothing, store nothing twice and keep
every channel's order; the Twitch connection never notices."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingress_egress.config import Settings
from ingress_egress.service import Service
from ingress_egress.simulator import ChatSimulator
from tests.support.delivery import (
    CHANNELS,
    all_published,
    assert_same,
    sent_ids,
    settled,
    stored_chat,
)
from tests.support.irc_client import start_simulator_cli
from tests.support.nats import NatsServer
from tests.support.service import eventually, get, running, settings_for
from tests.support.slow_proxy import SlowProxy

pytestmark = pytest.mark.timeout(420)


async def test_a_30s_outage_at_1000_msgs_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    count = 40_000
    server = NatsServer(tmp_path).start()
    try:
        base = Settings.defaults(
            message_bus_driver="nats",
            nats_url=server.url,
            spool_dir=str(tmp_path / "spool"),
            queue_max_messages=2000,
        )
        async with ChatSimulator(count=count, rate=1000) as sim:
            settings = settings_for(base, sim.port, CHANNELS)
            async with running(settings) as service:
                await eventually(lambda: service.counters.published >= 2000, 60, "first acks")
                server.kill()
                await eventually(lambda: not service.publisher.connected, 10, "bus seen down")
                reconnects = service.state.reconnects
                sent_at_kill = sim.sent_count
                await asyncio.sleep(30)  # fixed wait: the outage lasts 30 s of real time
                held = service.pipeline.describe()
                # 30 s of chat is waiting: the window is full, the rest is in the spool.
                assert sim.sent_count - sent_at_kill > 20_000
                assert held["window"] <= settings.delivery.queue_max_messages
                assert held["spool"]["records"] > 20_000
                assert held["spool"]["oldestAgeSeconds"] >= 25
                assert service.counters.spilled > 10_000
                assert service.state.connected and service.state.reconnects == reconnects
                server.start()
                assert await sim.wait_sent(count, timeout=120)
                await eventually(lambda: all_published(service, count), 180, "all delivered")
                counters = service.counters
                assert (counters.failed, counters.refused, counters.dropped) == (0, 0, 0)
                assert counters.replayed >= counters.spilled > 0
                assert service.pipeline.spool is not None
                assert service.pipeline.spool.count == 0
        stored = await stored_chat(server.url, settings, count)
        assert_same(stored, sent_ids(sim))  # every message once, each channel in order
        assert sum(len(ids) for ids in stored.values()) == count
    finally:
        server.stop()


async def test_a_slow_bus_keeps_twitch_connected_and_memory_bounded(tmp_path: Path) -> None:
    count = 12_000
    server = NatsServer(tmp_path).start()
    try:
        async with SlowProxy(server.port, delay_s=1.5) as proxy:
            base = Settings.defaults(
                message_bus_driver="nats",
                nats_url=proxy.url,
                spool_dir=str(tmp_path / "spool"),
                queue_max_messages=1000,
                publish_max_in_flight=128,
            )
            async with ChatSimulator(count=count, rate=1000) as sim:
                settings = settings_for(base, sim.port, CHANNELS)
                async with running(settings) as service:
                    await eventually(lambda: service.state.connected, 30, "connected")
                    peak_window = peak_in_flight = 0

                    def sampled_until_8000_sent() -> bool:  # 8 s of chat against the slow bus
                        nonlocal peak_window, peak_in_flight
                        held = service.pipeline.describe()
                        peak_window = max(peak_window, held["window"])
                        peak_in_flight = max(peak_in_flight, held["inFlight"])
                        return sim.sent_count >= 8000

                    await eventually(sampled_until_8000_sent, 60, "8,000 sent", interval=0.1)
                    assert service.pipeline.depth > 2000  # the backlog is real ...
                    assert peak_window <= 1000  # ... and memory holds only the window
                    assert peak_in_flight <= 128
                    assert service.counters.spilled > 1000
                    assert service.state.connected and service.state.reconnects == 0
                    assert service.view.loop_lag_s() < 1.0
                    # Back-pressure is visible: /_debug/twitch and /metrics.
                    debug = (await get(service, "/_debug/twitch")).json()
                    assert debug["queue"]["spool"]["records"] > 1000
                    assert debug["queue"]["spool"]["oldestAgeSeconds"] > 0
                    assert debug["counters"]["spilled"] > 1000
                    metrics = {
                        line.split(" ")[0]: float(line.split(" ")[1])
                        for line in (await get(service, "/metrics")).text.splitlines()
                        if line.startswith("ingress_")
                    }
                    assert metrics["ingress_spool_records"] > 1000
                    assert metrics["ingress_spool_bytes"] > 100_000
                    assert metrics["ingress_spool_oldest_age"] > 0
                    assert metrics["ingress_queue_depth"] > 1000
                    assert metrics["ingress_spool_refused_total"] == 0
                    proxy.delay_s = 0.0
                    assert await sim.wait_sent(count, timeout=60)
                    await eventually(lambda: all_published(service, count), 120, "all delivered")
                    assert service.state.reconnects == 0
                    assert service.counters.failed == 0
            stored = await stored_chat(server.url, settings, count)
            assert_same(stored, sent_ids(sim))
    finally:
        server.stop()


async def test_a_full_spool_refuses_loudly_and_keeps_what_it_took(tmp_path: Path) -> None:
    server = NatsServer(tmp_path).start()
    try:
        base = Settings.defaults(
            message_bus_driver="nats",
            nats_url=server.url,
            spool_dir=str(tmp_path / "spool"),
            spool_max_bytes=1 << 20,
            queue_max_messages=100,
        )
        async with ChatSimulator(count=3000, rate=1000) as sim:
            settings = settings_for(base, sim.port, CHANNELS)
            async with running(settings) as service:
                await eventually(lambda: service.counters.published >= 100, 30, "first acks")
                server.kill()
                await eventually(lambda: service.counters.refused > 0, 30, "spool full")
                debug = (await get(service, "/_debug/twitch")).json()
                assert debug["counters"]["refused"] > 0
                assert any(e["code"] == "spool_full" for e in debug["recentErrors"])
                spool = debug["queue"]["spool"]
                assert spool["bytes"] <= 1 << 20 and spool["records"] > 0
                held = spool["records"]
                server.start()
                assert await sim.wait_sent(3000, timeout=30)
                await eventually(lambda: settled(service), 60, "spool drained")
                counters = service.counters
                # What the spool took was delivered; what it refused was counted, not lost
                # silently: together they are everything read.
                assert counters.published + counters.refused == counters.received
                assert counters.published >= held
    finally:
        server.stop()


async def test_an_unusable_spool_dir_is_reported_and_the_service_still_publishes(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    base = Settings.defaults(message_bus_driver="memory", spool_dir=str(blocker / "spool"))
    async with ChatSimulator(count=50, rate=1000) as sim:
        service = Service(settings_for(base, sim.port, CHANNELS))
        await service.start()
        try:
            await eventually(lambda: service.counters.published >= 50, 30, "published")
            debug = (await get(service, "/_debug/twitch")).json()
            assert debug["queue"]["spool"] is None
            assert any(e["code"] == "spool_unavailable" for e in debug["recentErrors"])
        finally:
            await service.stop()


@contextlib.contextmanager
def pinned_to_one_cpu() -> Iterator[None]:
    """This process on one CPU, as the benchmark pins ``serve``: the burst then arrives
    faster than a slow sender takes it."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def test_a_burst_with_a_healthy_bus_never_spills_to_the_spool(tmp_path: Path) -> None:
    """The default configuration under a burst from a simulator in its own process (as in
    the benchmark): the memory bus acks at once, so the window must keep up and nothing be
    spilled, written and read back. (A sender that moved 256 envelopes per turn, while the
    read loop took every buffered byte without a yield, spilled 28,000 of this burst.)"""
    count = 200_000
    proc, _, port = start_simulator_cli("--count", str(count), "--prebuilt")
    try:
        base = Settings.defaults(message_bus_driver="memory", spool_dir=str(tmp_path / "spool"))
        settings = settings_for(base, port, CHANNELS)
        with pinned_to_one_cpu():
            async with running(settings) as service:
                await eventually(lambda: all_published(service, count), 120, "all delivered")
                counters = service.counters
                assert (counters.failed, counters.refused, counters.dropped) == (0, 0, 0)
                assert counters.spilled == 0 and counters.replayed == 0
                assert service.publisher.count == count + len(CHANNELS)
    finally:
        proc.kill()
        proc.wait()
