"""The runtime parts on their own: heartbeat lag on a fake clock, channel control chosen
once (cluster, pool or none), readiness in its order."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ingress_egress.cluster import ClusterConfig, ClusterCoordinator
from ingress_egress.cluster.store import MemoryStore
from ingress_egress.runtime.channels import ClusterChannels, PoolChannels, channel_control
from ingress_egress.runtime.heartbeat import HEARTBEAT_S, LAG_WINDOW_S, LoopHeartbeat
from ingress_egress.sources.base import ChannelChange, ChannelsUnavailable, chat_readiness
from ingress_egress.status import ChatState, ErrorLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_heartbeat_keeps_the_worst_lag_of_the_last_minute() -> None:
    clock = Clock()
    heartbeat = LoopHeartbeat(clock)
    clock.now += HEARTBEAT_S + 2.0  # the loop was blocked for 2 s
    heartbeat.beat()
    assert heartbeat.loop_lag_s() == 0.0
    assert heartbeat.recent_loop_lag_s() == pytest.approx(2.0)
    for _ in range(int(LAG_WINDOW_S / HEARTBEAT_S) + 2):  # on time for over a minute
        clock.now += HEARTBEAT_S
        heartbeat.beat()
    assert heartbeat.recent_loop_lag_s() == 0.0
    clock.now += HEARTBEAT_S + 7.0  # stalled now, no beat yet
    assert heartbeat.loop_lag_s() == pytest.approx(7.0)


class Reader:
    """A pool's channel side: reads exactly what it is told."""

    def __init__(self, state: ChatState) -> None:
        self.state = state

    def change(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> ChannelChange:
        kept = tuple(c for c in self.state.reading if c not in remove)
        added = tuple(c for c in add if c not in kept)
        self.state.set_reading(kept + added)
        gone = tuple(c for c in remove if c not in kept)
        return ChannelChange(added, gone, self.state.reading)

    def replace(self, channels: tuple[str, ...]) -> ChannelChange:
        gone = [c for c in self.state.reading if c not in channels]
        return self.change(add=channels, remove=gone)


async def test_the_pool_takes_changes_on_a_single_instance() -> None:
    state = ChatState(transport="irc", identity="anonymous")
    control = channel_control(Reader(state), None, state)
    assert isinstance(control, PoolChannels)
    change = await control.change_channels(["a", "b"], [])
    assert change.wanted == ("a", "b")
    state.confirm_joined("a")
    assert control.channel_listing() == {
        "wanted": ["a", "b"],
        "joined": ["a"],
        "pending": ["b"],
        "failed": {},
    }
    assert control.replace_channels(("b", "c")) == "2 wanted, +1 -1"


async def test_the_cluster_takes_changes_in_cluster_mode() -> None:
    state = ChatState(transport="irc", identity="anonymous", reading=("a",))
    store = MemoryStore()
    coordinator = ClusterCoordinator(
        store, Reader(state), state, ClusterConfig("m1", "memory"), ErrorLog()
    )
    control = channel_control(Reader(state), coordinator, state)
    assert isinstance(control, ClusterChannels)
    change = await control.change_channels(["a", "b"], [])
    assert change.wanted == ("a", "b") and change.added == ("a", "b")
    listing = control.channel_listing()
    assert listing["wanted"] == ["a", "b"] and listing["reading"] == ["a"]
    assert control.replace_channels(("x",)) == "1 wanted, for the whole cluster"
    store.up = False
    with pytest.raises(ChannelsUnavailable):
        await control.change_channels(["c"], [])


def test_a_source_without_runtime_channels_gets_no_control() -> None:
    state = ChatState(transport="eventsub", identity="bot")
    assert channel_control(None, None, state) is None


def test_chat_readiness_names_what_is_missing() -> None:
    state = ChatState(transport="irc", identity="anonymous", reading=("a", "b", "c"))
    state.confirm_joined("a")
    state.mark_failed("c", "msg_banned")
    assert chat_readiness(state.snapshot()) == [
        "not connected to Twitch",
        "channels not joined yet: b",
        "channels failed: c (msg_banned)",
    ]
    state.set_connected(True, since=1.0)
    state.confirm_joined("b")
    state.confirm_joined("c")
    assert chat_readiness(state.snapshot()) == []
