"""The connection pool at scale: 1,000 channels under an enforced JOIN limit, and 1,000
reconnect cycles without leaking tasks, sockets or memory. Real sockets to the simulator.

Time is scaled down: Twitch's 20 JOINs per 10 s becomes 200 per 2 s on both sides (1,000
channels take about 10 s instead of 500).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import tracemalloc

import pytest

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings, parse_irc_url
from ingress_egress.credentials import StaticTokenProvider
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope.types import MESSAGE
from ingress_egress.simulator import ChatSimulator, Faults
from ingress_egress.sources.irc.codec import make_codec
from ingress_egress.sources.irc.joins import ConnectGate, JoinLimiter
from ingress_egress.sources.irc.pool import ChatPool, PoolLimits
from ingress_egress.sources.irc.transport import open_transport
from ingress_egress.status import ChatState, Counters, ErrorLog
from tests.support.service import eventually, running, settings_for, wait_status

pytestmark = pytest.mark.timeout(180)


async def test_a_thousand_channels_join_across_the_pool_without_breaching_the_limit() -> None:
    channels = tuple(f"channel_{i:04d}" for i in range(1000))
    # The simulator disconnects a login on the JOIN that breaches 200 per 2 s: one breach
    # shows up as a reconnect and a second JOIN of the same channel.
    faults = Faults(join_limit_per_10s=200, join_window=2.0)
    async with ChatSimulator(count=3000, rate=3000, faults=faults) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(
            Settings.defaults(message_bus_driver="memory"),
            sim.port,
            channels,
            twitch_bot_username="bigbot",
            irc_channels_per_connection=50,
            irc_connect_interval_ms=50,
            twitch_join_rate_limit=200,
            twitch_join_rate_window_ms=2000,
        )
        credentials = StaticTokenProvider("bigbot", "tok_big_0123456789abcdef")
        async with running(settings, publisher=publisher, credentials=credentials) as s:
            await eventually(lambda: len(s.state.joined) == 1000, 60, "1,000 channels joined")
            ready = await wait_status(s, "/readyz", 200)
            assert ready == {"status": "ready"}
            assert s.state.reconnects == 0
            debug = await wait_status(s, "/_debug/twitch", 200)
            connections = debug["connections"]
            assert len(connections) == 20 == debug["pool"]["connections"]
            assert all(c["channels"] == 50 and c["joinedChannels"] == 50 for c in connections)
            assert all(c["connected"] and c["reconnects"] == 0 for c in connections)
            assert len(debug["joinedChannels"]) == 1000 and debug["pendingChannels"] == []
            assert await sim.wait_sent(3000, timeout=60)
            await eventually(lambda: s.counters.published >= 4000, 60, "publishes")
        assert sim.connections == 0
    joined = [channel for _, channel in sim.joins]
    assert sorted(joined) == sorted(channels)  # each exactly once: no breach, no rejoin
    assert len({index for index, _ in sim.joins}) == 20
    delivered: dict[str, int] = {}
    for message in publisher.messages:
        if message.type == "external.chat.message.v1":
            delivered[message.channel] = delivered.get(message.channel, 0) + 1
    assert delivered == {channel: len(items) for channel, items in sim.sent.items() if items}


async def test_rejoins_after_drops_share_the_join_limit_with_first_joins() -> None:
    # Once all 300 channels are joined, three of the six connections drop at once: their 150
    # rejoins (more than one window's worth) go through the limiter that the first joins
    # filled, and the simulator, counting every JOIN of the login, sees no breach.
    channels = tuple(f"room_{i:03d}" for i in range(300))
    faults = Faults(join_limit_per_10s=100, join_window=2.0, drop_after=5, apply_to_first=3)
    async with ChatSimulator(count=1500, rate=1500, faults=faults) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(
            Settings.defaults(message_bus_driver="memory"),
            sim.port,
            channels,
            twitch_bot_username="midbot",
            irc_channels_per_connection=50,
            irc_connect_interval_ms=50,
            twitch_join_rate_limit=100,
            twitch_join_rate_window_ms=2000,
        )
        credentials = StaticTokenProvider("midbot", "tok_mid_0123456789abcdef")
        sim.pause()
        async with running(settings, publisher=publisher, credentials=credentials) as s:
            await eventually(lambda: len(s.state.joined) == 300, 60, "all joined")
            sim.resume()
            await eventually(lambda: s.state.reconnects == 3, 30, "three drops")
            await eventually(lambda: len(s.state.joined) == 300, 60, "all joined again")
            assert await sim.wait_sent(1500, timeout=60)
            chat = lambda: sum(  # noqa: E731
                1 for m in publisher.messages if m.type == "external.chat.message.v1"
            )
            await eventually(lambda: chat() >= 1500, 30, "chat published")
            assert s.state.reconnects == 3  # the three planned drops, no breach
    assert len(sim.joins) == 300 + 3 * 50
    assert chat() == 1500


def test_join_limiter_waits_out_the_allowance_and_bounds_its_memory() -> None:
    limiter = JoinLimiter(limit=5, window_s=1.0, allowance_s=0.1)
    limiter.record(0.0, 5)
    assert limiter.available(1.05) == 0  # still inside window + allowance
    assert limiter.wait_s(1.05) == pytest.approx(0.05)
    assert limiter.available(1.1) == 5
    for second in range(100):
        limiter.record(float(second * 2), limiter.available(float(second * 2)))
    assert len(limiter._sent) <= 5


async def test_connect_gate_spaces_new_connections() -> None:
    gate = ConnectGate(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(4):
        await gate.wait()
    assert loop.time() - started >= 0.15 - 0.01


async def test_a_thousand_reconnect_cycles_leak_no_tasks_sockets_or_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A warning per reconnect is right in production; here pytest would keep 1,000 records.
    caplog.set_level(logging.ERROR, logger="ingress_egress.irc")
    # Every connection is dropped after one message: connect, log in, JOIN, read, drop, back
    # off (1-2 ms), again. Steady states are compared with the chat paused and connected.
    faults = Faults(drop_after=1)
    received: list[int] = [0]

    class Sink:
        def accept_many(self, envelopes: list[OutboundMessage], *, chat_only: bool = False) -> None:
            received[0] += sum(m.type == MESSAGE for m in envelopes)

    # The codec the service would choose (C or Python), wired as the service wires it.
    codec = make_codec(EnvelopeBuilder())
    async with ChatSimulator(rate=None, faults=faults, record=False, batch_size=1) as sim:
        state = ChatState(transport="irc", identity="anonymous")
        pool = ChatPool(
            endpoint=parse_irc_url(f"irc://127.0.0.1:{sim.port}"),
            channels=("cycle",),
            # One nick for every connection (justinfan nicks are random: each new one would
            # take a slot of the parser's bounded string cache and look like growth).
            login="cyclebot",
            credentials=StaticTokenProvider("cyclebot", "tok_cycle_0123456789abcdef"),
            codec=codec,
            transport_factory=functools.partial(open_transport, split_lines=codec.split_lines),
            sink=Sink(),
            state=state,
            counters=Counters(),
            errors=ErrorLog(),
            limits=PoolLimits(
                connect_interval_s=0.0,
                join_limit=100_000,
                join_window_s=1.0,
                reconnect_initial_s=0.001,
                reconnect_max_s=0.002,
            ),
        )
        connection = pool.irc_connections[0]
        runner = asyncio.create_task(pool.run())

        async def steady(tasks_at_most: int | None = None) -> tuple[int, int, tracemalloc.Snapshot]:
            sim.pause()
            await eventually(
                lambda: state.joined == {"cycle"} and sim.connections == 1, 20, "connected"
            )
            # Every message the simulator wrote was read, once (drops lose nothing: the
            # server flushes before it closes).
            await eventually(lambda: received[0] == sim.sent_count, 10, "all read")
            # One-shot tasks (PONG, JOIN sends) finish: each session keeps only its two
            # loops (keepalive, joiner).
            await eventually(
                lambda: all(len(s.tasks) == 2 for s in connection.sessions()), 10, "one-shot tasks"
            )
            if tasks_at_most is not None:
                # The last closed connection's tasks (the client's and the in-process
                # simulator's) may still be finishing; a leak would never get back down.
                await eventually(
                    lambda: len(asyncio.all_tasks()) <= tasks_at_most, 10, "tasks back down"
                )
            gc.collect()
            return len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd")), snapshot()

        tracemalloc.start(1)
        try:
            await eventually(lambda: connection.reconnects >= 50, 60, "warm-up cycles")
            tasks_before, fds_before, memory_before = await steady()
            sim.resume()
            await eventually(lambda: connection.reconnects >= 1050, 120, "1,000 reconnect cycles")
            tasks_after, fds_after, memory_after = await steady(tasks_at_most=tasks_before)
        finally:
            tracemalloc.stop()
            await pool.stop()
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        assert tasks_after == tasks_before
        assert fds_after == fds_before
        grown = sum(stat.size_diff for stat in memory_after.compare_to(memory_before, "filename"))
        top = memory_after.compare_to(memory_before, "lineno")[:5]
        assert grown < 64 * 1024, f"the chat client kept {grown} bytes: {top}"
        assert sim.sent_count >= 1000
        assert state.reconnects == connection.reconnects >= 1050


def snapshot() -> tracemalloc.Snapshot:
    """Allocations made by the chat source and its state, not by the simulator or pytest."""
    keep = [
        tracemalloc.Filter(True, "*/ingress_egress/sources/*"),
        tracemalloc.Filter(True, "*/ingress_egress/status/*.py"),
    ]
    return tracemalloc.take_snapshot().filter_traces(keep)
