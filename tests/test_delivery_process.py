"""Stopping the real `ingress-egress serve` process under load, as Cloud Run does (SIGTERM,
10 s grace) and as a crash does (SIGKILL): the spool carries what was not acknowledged into
the next start. Real nats-server (JetStream file storage), the chat simulator in the test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingress_egress.config import Settings
from ingress_egress.simulator import ChatSimulator
from tests.support.delivery import CHANNELS, assert_same, sent_ids, stored_chat
from tests.support.nats import NatsServer
from tests.support.serve import Serve, idle
from tests.support.slow_proxy import SlowProxy

pytestmark = pytest.mark.timeout(300)
SETTINGS = Settings.defaults(message_bus_driver="nats")


async def test_sigterm_under_load_exits_in_time_and_the_restart_drains_the_spool(
    tmp_path: Path,
) -> None:
    count = 8000
    server = NatsServer(tmp_path).start()
    processes: list[Serve] = []
    try:
        async with (
            SlowProxy(server.port, delay_s=1.0) as proxy,
            ChatSimulator(count=count, rate=1000) as sim,
        ):
            env = {"QUEUE_MAX_MESSAGES": "1000", "PUBLISH_MAX_IN_FLIGHT": "128"}
            first = Serve(tmp_path, sim.port, proxy.url, **env)
            processes.append(first)
            await first.until(lambda d: d["counters"]["published"] >= 300, 60, "first acks")
            await sim.wait_sent(4000, timeout=60)
            sim.pause()
            paused_at = sim.sent_count
            before = await first.until(
                lambda d: d["counters"]["received"] >= paused_at + len(CHANNELS), 30, "reads"
            )
            assert before["queue"]["depth"] > 1000  # a real backlog behind the slow bus
            took = await first.terminate()
            assert took < 10  # Cloud Run's grace period
            print(f"SIGTERM with a backlog of {before['queue']['depth']}: exited in {took:.2f}s")
            assert "kept for the next start" in first.log()

            proxy.delay_s = 0.0
            second = Serve(tmp_path, sim.port, proxy.url, **env)
            processes.append(second)
            await second.until(lambda d: d["counters"]["replayed"] > 0, 60, "spool replayed")
            sim.resume()
            assert await sim.wait_sent(count, timeout=60)
            after = await second.until(
                lambda d: d["counters"]["received"] >= count - paused_at and idle(d),
                120,
                "everything delivered",
            )
            assert after["queue"]["spool"]["records"] == 0
            assert after["counters"]["failed"] == 0
            assert await second.terminate() < 10
        stored = await stored_chat(server.url, SETTINGS, count)
        assert_same(stored, sent_ids(sim))
    finally:
        for process in processes:
            process.cleanup()
        server.stop()


async def test_sigkill_under_load_loses_at_most_the_fsync_window(tmp_path: Path) -> None:
    count = 15_000
    margin_s = 1.0  # the 50 ms fsync window, plus simulator -> service transit on a busy box
    server = NatsServer(tmp_path).start()
    processes: list[Serve] = []
    try:
        async with ChatSimulator(count=count, rate=1000) as sim:
            first = Serve(tmp_path, sim.port, server.url, SPOOL_FSYNC_MS="50")
            processes.append(first)
            await first.until(lambda d: d["counters"]["published"] >= 3000, 60, "under load")
            safe = {channel: list(ids) for channel, ids in sent_ids(sim).items()}
            await asyncio.sleep(margin_s)  # fixed wait: the kill comes margin_s after "safe"
            first.proc.kill()  # SIGKILL: no shutdown code runs
            await asyncio.to_thread(first.proc.wait, 10)

            second = Serve(tmp_path, sim.port, server.url, SPOOL_FSYNC_MS="50")
            processes.append(second)
            assert await sim.wait_sent(count, timeout=90)
            await second.until(
                lambda d: idle(d) and d["counters"]["received"] > 0, 120, "delivered"
            )
            await asyncio.sleep(1.0)  # fixed wait: no signal marks the last line read
            await second.until(idle, 60, "delivered")
            assert await second.terminate() < 10
        sent = sent_ids(sim)
        stored = await stored_chat(server.url, SETTINGS, count - 2000)
        lost = 0
        for channel, ids in sent.items():
            got = stored.get(channel, [])
            # Everything sent before the margin arrived ...
            missing_safe = set(safe.get(channel, [])) - set(got)
            assert not missing_safe, f"{channel}: {len(missing_safe)} lost before the window"
            # ... in order, once; what was lost is only from the last moments before the kill.
            assert got == [mid for mid in ids if mid in set(got)], f"{channel}: order differs"
            lost += len(ids) - len(got)
        assert lost <= 1000 * (margin_s + 0.5), f"{lost} lost"
        print(f"SIGKILL at 1,000 msg/s: {lost} of {count} messages lost")
    finally:
        for process in processes:
            process.cleanup()
        server.stop()
