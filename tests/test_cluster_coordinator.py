"""One coordinator's decisions over an in-process store with a clock the test moves.

The chat source here is a stand-in that records what it was told to read and lets the test
say when Twitch confirmed a JOIN; the real pool, real stores and real processes are in
tests/test_cluster_process.py and tests/test_cluster_stores.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ingress_egress.cluster import ClusterConfig, ClusterCoordinator
from ingress_egress.cluster.assignment import readers_of
from ingress_egress.cluster.store import MemoryStore
from ingress_egress.status import ChatState, ErrorLog

CHANNELS = tuple(f"ch{i}" for i in range(60))


class Source:
    """What the pool does with ``change``: reading follows at once, joined when confirmed."""

    def __init__(self) -> None:
        self.state = ChatState(transport="irc", identity="anonymous")
        self.parts: list[str] = []
        self.joins: list[str] = []

    def change(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        gone = set(remove)
        self.parts.extend(remove)
        self.joins.extend(add)
        for channel in remove:
            self.state.lose_joined(channel)
        kept = tuple(c for c in self.state.reading if c not in gone)
        self.state.set_reading(kept + tuple(c for c in add if c not in kept))

    def confirm_all(self) -> None:
        for channel in self.state.reading:
            if channel not in self.state.joined:
                self.state.confirm_joined(channel)


class Member:
    def __init__(self, store: MemoryStore, name: str, clock: list[float], **config: float) -> None:
        self.source = Source()
        self.coordinator = ClusterCoordinator(
            store,
            self.source,
            self.source.state,
            ClusterConfig(instance_id=name, coordination="memory", **config),  # type: ignore[arg-type]
            ErrorLog(),
            seed=CHANNELS,
            clock=lambda: clock[0],
        )

    @property
    def reading(self) -> set[str]:
        return set(self.source.state.reading)

    async def start(self) -> None:
        await self.coordinator._connect()


class Cluster:
    def __init__(self) -> None:
        self.clock = [1000.0]
        self.store = MemoryStore(ttl_s=10.0)
        self.members: dict[str, Member] = {}

    async def add(self, name: str, **config: float) -> Member:
        member = Member(self.store, name, self.clock, **config)
        await member.start()
        self.members[name] = member
        return member

    async def step(self, seconds: float = 2.0, confirm: bool = True) -> None:
        """Advance the clock; every member ticks (twice: beat, then act on the view)."""
        self.clock[0] += seconds
        self.store.now = self.clock[0]
        for _ in range(2):
            for member in self.members.values():
                await member.coordinator.tick()
                if confirm:
                    member.source.confirm_all()

    def readers(self, channel: str) -> set[str]:
        return {n for n, m in self.members.items() if channel in m.source.state.joined}


async def steady(cluster: Cluster, steps: int = 4) -> None:
    for _ in range(steps):
        await cluster.step()


async def test_three_members_read_every_channel_exactly_twice() -> None:
    cluster = Cluster()
    for name in ("ie-a", "ie-b", "ie-c"):
        await cluster.add(name)
    await steady(cluster)
    live = ["ie-a", "ie-b", "ie-c"]
    for channel in CHANNELS:
        assert cluster.readers(channel) == set(readers_of(channel, live, 2))
    for member in cluster.members.values():
        assert member.coordinator.under_replicated == []
        assert len(member.coordinator.live_members()) == 3


async def test_a_newcomer_takes_over_only_after_its_join_is_confirmed() -> None:
    cluster = Cluster()
    for name in ("ie-a", "ie-b", "ie-c"):
        await cluster.add(name)
    await steady(cluster)
    before = {c: cluster.readers(c) for c in CHANNELS}
    joins_before = {n: list(m.source.joins) for n, m in cluster.members.items()}
    newcomer = await cluster.add("ie-d")
    await cluster.step(confirm=False)  # the newcomer JOINs, Twitch has not confirmed yet
    won = newcomer.reading
    assert won, "the newcomer must win a share"
    for channel in won:
        assert before[channel] <= cluster.readers(channel), "nobody lets go before confirmation"
    await steady(cluster)
    after = ["ie-a", "ie-b", "ie-c", "ie-d"]
    for channel in CHANNELS:
        assert cluster.readers(channel) == set(readers_of(channel, after, 2))
    # Only the newcomer's share moved: the old members joined nothing, and each parted
    # only channels the newcomer won.
    for name in ("ie-a", "ie-b", "ie-c"):
        member = cluster.members[name]
        assert member.source.joins == joins_before[name]
        assert set(member.reading) <= {c for c in CHANNELS if name in before[c]}
        assert {c for c in CHANNELS if name in before[c]} - member.reading <= won


async def test_a_dead_member_is_replaced_after_the_ttl_and_nothing_falls_to_zero() -> None:
    cluster = Cluster()
    for name in ("ie-a", "ie-b", "ie-c"):
        await cluster.add(name)
    await steady(cluster)
    dead = cluster.members.pop("ie-c")  # SIGKILL: no leave, its record expires by TTL
    dead_channels = dead.reading
    for _ in range(3):  # within the TTL: the others still see it, nothing changes
        await cluster.step()
        for channel in CHANNELS:
            assert cluster.readers(channel), channel
    await steady(cluster, 4)  # past the TTL
    for channel in CHANNELS:
        assert cluster.readers(channel) == {"ie-a", "ie-b"}
    assert dead_channels


async def test_leave_hands_over_before_returning() -> None:
    cluster = Cluster()
    for name in ("ie-a", "ie-b", "ie-c"):
        await cluster.add(name)
    await steady(cluster)
    leaver = cluster.members["ie-a"]
    assert leaver.reading
    # The others see the record vanish at once (a delete, not a TTL) and take over.
    await leaver.coordinator.store.leave("ie-a")
    leaver.coordinator.leaving = True
    others = [m for n, m in cluster.members.items() if n != "ie-a"]
    for _ in range(4):  # a member is dropped after two views without it
        cluster.clock[0] += 0.5
        cluster.store.now = cluster.clock[0]
        for member in others:
            await member.coordinator.tick()
            member.coordinator._wake.set()
            await member.coordinator.tick()
            member.source.confirm_all()
    await leaver.coordinator.leave()
    assert leaver.reading == set()
    for channel in CHANNELS:
        assert cluster.readers(channel) - {"ie-a"} == {"ie-b", "ie-c"}


async def test_store_outage_changes_nothing_and_settles_before_acting() -> None:
    cluster = Cluster()
    for name in ("ie-a", "ie-b", "ie-c"):
        await cluster.add(name)
    await steady(cluster)
    reading = {n: m.reading for n, m in cluster.members.items()}
    cluster.store.up = False
    for _ in range(10):  # 20 s: longer than the TTL
        await cluster.step()
    assert {n: m.reading for n, m in cluster.members.items()} == reading
    for member in cluster.members.values():
        assert member.coordinator.readiness()[0].startswith("cluster store unreachable")
    # Back: every record expired meanwhile. Members re-register one by one; nobody acts
    # on a view that shows only itself.
    cluster.store.up = True
    cluster.store.records.clear()
    first = cluster.members["ie-a"]
    await first.coordinator.tick()
    assert first.reading == reading["ie-a"]
    await steady(cluster)
    assert {n: m.reading for n, m in cluster.members.items()} == reading


async def test_the_wanted_list_is_the_clusters() -> None:
    cluster = Cluster()
    a = await cluster.add("ie-a")
    b = await cluster.add("ie-b")
    await steady(cluster)
    change = await a.coordinator.change_wanted(["newchan"], ["ch0"])
    assert change.added == ("newchan",) and change.removed == ("ch0",)
    await steady(cluster)
    assert b.coordinator.wanted == a.coordinator.wanted
    assert cluster.readers("newchan") == {"ie-a", "ie-b"}
    assert cluster.readers("ch0") == set()
    b.coordinator.request_replace(("x1", "x2"))
    await steady(cluster)
    assert cluster.readers("x1") == cluster.readers("x2") == {"ie-a", "ie-b"}
    assert a.reading == {"x1", "x2"}


async def test_a_second_seed_does_not_override_the_store() -> None:
    store = MemoryStore()
    store.channels = ("kept",)
    clock = [0.0]
    member = Member(store, "ie-z", clock)
    await member.start()
    assert member.coordinator.wanted == ("kept",)


@pytest.mark.parametrize("replicas", [1, 2, 3])
async def test_under_replicated_is_reported_until_joins_are_confirmed(replicas: int) -> None:
    cluster = Cluster()
    for name in ("ie-a", "ie-b", "ie-c"):
        await cluster.add(name, replicas=replicas)
    await cluster.step(confirm=False)
    await cluster.step(confirm=False)
    coordinator = cluster.members["ie-a"].coordinator
    assert len(coordinator.under_replicated) == len(CHANNELS)
    await steady(cluster)
    assert coordinator.under_replicated == []
    assert coordinator.describe()["underReplicated"]["count"] == 0


async def test_one_empty_view_from_the_store_changes_nothing() -> None:
    """A store that answers one round with no members at all (seen once with NATS KV's
    key listing under load) must not make a member claim every channel."""
    cluster = Cluster()
    for name in ("ie-a", "ie-b", "ie-c"):
        await cluster.add(name)
    await steady(cluster)
    a = cluster.members["ie-a"]
    reading = a.reading
    joins = list(a.source.joins)
    real_members = cluster.store.members
    blinks = [1]

    async def blinking() -> dict:
        if blinks:
            blinks.pop()
            return {}
        return await real_members()

    cluster.store.members = blinking  # type: ignore[method-assign]
    a.coordinator._wake.set()
    await a.coordinator.tick()
    assert a.reading == reading and a.source.joins == joins
    await steady(cluster)
    assert a.reading == reading and a.source.joins == joins
