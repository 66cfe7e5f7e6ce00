"""The send lease's contract on the real engines: a JetStream key-value bucket on a real
nats-server, and the real Firestore emulator, with the keepers' real loops.

Each member has its own connection to the store; a member cut off from the store (a
network partition, or the store gone for it) sits behind a TCP proxy the test cuts. A
sampler watches every member's ``may_send`` all along: never two at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest

from ingress_egress.cluster.lease import LeaseGrant, LeaseHolder, LeaseLost, LeaseStore
from ingress_egress.cluster.lease_firestore import FirestoreLeaseStore
from ingress_egress.cluster.lease_keeper import LeaseKeeper, LeaseTiming
from ingress_egress.cluster.lease_nats import NatsLeaseStore, lease_bucket
from ingress_egress.cluster.store import StoreUnavailable
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    TcpProxy,
    firestore_client,
    firestore_emulator_fixture,
)
from tests.support.nats import NatsServer
from tests.support.processes import free_port
from tests.support.service import eventually

# The overlap sampler looks at every member this often (a sampling rate, not a wait).
SAMPLE_EVERY_S = 0.002

pytestmark = pytest.mark.timeout(120)

FIRESTORE = pytest.param("firestore", marks=pytest.mark.emulator)
SHORT = LeaseTiming(ttl_s=2.0, heartbeat_s=0.25, margin_s=0.5)
# Longer than any wait below: a handover seen within it cannot have come from expiry.
LONG = LeaseTiming(ttl_s=30.0, heartbeat_s=0.25, margin_s=2.0)


@dataclass
class Member:
    keeper: LeaseKeeper
    task: asyncio.Task[None]
    proxy: TcpProxy | None
    gains: list[tuple[int, float]] = field(default_factory=list)  # fence, when (monotonic)
    losses: list[str] = field(default_factory=list)

    def may_send(self) -> bool:
        return self.keeper.may_send()

    async def kill(self) -> None:
        """Stop renewing at once, as a SIGKILLed process would: no leave, no release."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@dataclass
class Cluster:
    make_store: Callable[[str | None], LeaseStore]
    store_address: tuple[str, int]
    timing: LeaseTiming
    members: list[Member] = field(default_factory=list)
    overlaps: list[str] = field(default_factory=list)

    async def join(
        self,
        name: str,
        partitionable: bool = False,
        on_gained: Callable[[int], Awaitable[None]] | None = None,
    ) -> Member:
        proxy = None
        via: str | None = None
        if partitionable:
            proxy = await TcpProxy(*self.store_address).start()
            via = proxy.host_port
        keeper = LeaseKeeper(self.make_store(via), name, self.timing)
        member = Member(keeper, asyncio.create_task(keeper.run()), proxy)

        async def gained(fence: int) -> None:
            member.gains.append((fence, time.monotonic()))
            if on_gained is not None:
                await on_gained(fence)

        async def lost(why: str) -> None:
            member.losses.append(why)

        keeper.listen(gained, lost)
        self.members.append(member)
        return member

    def holders(self) -> list[Member]:
        return [m for m in self.members if m.may_send()]

    async def sample(self) -> None:
        while True:
            holding = [m.keeper.member for m in self.holders()]
            if len(holding) > 1:
                self.overlaps.append(",".join(holding))
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def one_holder(self, timeout: float = 15.0) -> Member:
        await eventually(lambda: len(self.holders()) == 1, timeout, "one holder")
        return self.holders()[0]


@pytest.fixture(params=["nats", FIRESTORE])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def cluster_of(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[LeaseTiming], Cluster]]:
    """Members of one cluster on one engine, their keepers running; stopped at the end."""
    server: NatsServer | None = None
    if engine == "nats":
        server = NatsServer(tmp_path).start()
        address = ("127.0.0.1", server.port)
    else:
        emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
        emulator.clear()
        address = (emulator.host, emulator.port)
    clusters: list[Cluster] = []
    samplers: list[asyncio.Task[None]] = []

    def make(timing: LeaseTiming) -> Cluster:
        def make_store(via: str | None) -> LeaseStore:
            host_port = via or f"{address[0]}:{address[1]}"
            if server is not None:
                return NatsLeaseStore(f"nats://{host_port}", "test", timing.ttl_s)
            return FirestoreLeaseStore(firestore_client(host_port), "test", timing.ttl_s)

        cluster = Cluster(make_store, address, timing)
        clusters.append(cluster)
        samplers.append(asyncio.create_task(cluster.sample()))
        return cluster

    try:
        yield make
    finally:
        for task in samplers:
            task.cancel()
        for cluster in clusters:
            for member in cluster.members:
                await member.kill()
                await member.keeper.close()
                if member.proxy is not None:
                    await member.proxy.close()
        if server is not None:
            server.stop()
    for cluster in clusters:
        assert cluster.overlaps == [], "two members could send at once"


async def test_two_members_compete_and_exactly_one_holds(cluster_of) -> None:
    cluster = cluster_of(SHORT)
    a, b = await cluster.join("ie-a"), await cluster.join("ie-b")
    holder = await cluster.one_holder()
    other = b if holder is a else a
    # Renewals go on well past the TTL; the other never gets it.
    await eventually(lambda: holder.keeper.renewals >= 16, 20, "renewals past the TTL")
    assert holder.may_send() and not other.may_send()
    assert other.keeper.acquisitions == 0 and other.keeper.holder == holder.keeper.member
    assert other.keeper.fence == holder.keeper.fence > 0
    assert len(holder.gains) == 1 and holder.losses == []


async def test_a_killed_holder_is_taken_over_after_the_ttl_with_a_higher_fence(
    cluster_of,
) -> None:
    cluster = cluster_of(SHORT)
    seen_at_takeover: list[tuple[bool, float | None]] = []
    first = await cluster.join("ie-a")
    holder = await cluster.one_holder()
    assert holder is first

    async def gained(_: int) -> None:  # what the dead holder said when the other took over
        seen_at_takeover.append((first.may_send(), first.keeper.last_renewal_at))

    second = await cluster.join("ie-b", on_gained=gained)
    await eventually(lambda: second.keeper.holder == "ie-a", 10, "b sees a holding")
    old_fence = first.keeper.fence
    await first.kill()
    await eventually(second.may_send, 15, "b takes over")
    await eventually(lambda: bool(seen_at_takeover), 5, "b's listener ran")
    still_sending, last_renewal = seen_at_takeover[0]
    assert still_sending is False
    assert last_renewal is not None
    gained_at = second.gains[0][1]
    # the store let b in only after a had not renewed for the TTL (its own clock)
    assert gained_at - last_renewal >= SHORT.ttl_s - 0.05
    assert second.keeper.fence > old_fence


async def test_release_hands_the_lease_over_at_once(cluster_of) -> None:
    cluster = cluster_of(LONG)
    first = await cluster.join("ie-a")
    await cluster.one_holder()
    second = await cluster.join("ie-b")
    await eventually(lambda: second.keeper.holder == "ie-a", 10, "b sees a holding")
    old_fence = first.keeper.fence
    await first.keeper.leave()
    assert not first.may_send() and first.losses == ["leaving"]
    await asyncio.wait_for(first.task, 5)  # the loop ends with leave
    # far sooner than the 30 s TTL: only the release can explain it
    await eventually(second.may_send, 10, "b takes the released lease")
    assert second.keeper.fence > old_fence


@pytest.mark.parametrize("engine", ["nats"])  # Firestore's async client cannot watch: polled
async def test_with_nats_a_follower_hears_of_the_release_before_its_next_poll(
    cluster_of,
) -> None:
    # Followers poll every 10 s here: a takeover within 5 s came from the watch.
    cluster = cluster_of(LeaseTiming(ttl_s=40.0, heartbeat_s=10.0, margin_s=2.0))
    first = await cluster.join("ie-a")
    await cluster.one_holder()
    second = await cluster.join("ie-b")
    await eventually(lambda: second.keeper.holder == "ie-a", 10, "b sees a holding")
    await first.keeper.leave()
    await eventually(second.may_send, 5, "b takes the released lease at once")


async def test_a_holder_cut_off_from_the_store_stops_before_the_other_takes_over(
    cluster_of,
) -> None:
    cluster = cluster_of(SHORT)
    cut_off = await cluster.join("ie-a", partitionable=True)
    await cluster.one_holder()
    assert cut_off.may_send()
    other = await cluster.join("ie-b")
    await eventually(lambda: other.keeper.holder == "ie-a", 10, "b sees a holding")
    assert cut_off.proxy is not None
    old_fence = cut_off.keeper.fence
    await cut_off.proxy.cut()
    await eventually(lambda: not cut_off.may_send(), 10, "a stops sending")
    await eventually(lambda: cut_off.losses != [], 5, "a hears it lost the lease")
    assert "not renewed" in cut_off.losses[0]
    await eventually(other.may_send, 15, "b takes over after the TTL")
    assert other.keeper.fence > old_fence
    await cut_off.proxy.resume()  # the partition heals: a's late writes must not count
    await eventually(lambda: cut_off.keeper.store_connected, 15, "a reaches the store again")
    await eventually(lambda: cut_off.keeper.holder == "ie-b", 10, "a sees b holding")
    assert other.may_send() and not cut_off.may_send()


async def test_racing_takers_one_wins_and_stale_writes_of_the_holder_are_recognised(
    cluster_of,
) -> None:
    cluster = cluster_of(SHORT)
    stores = [cluster.make_store(None) for _ in range(4)]
    for store in stores:
        await store.start()
    try:
        answers = await asyncio.gather(
            *(store.acquire(f"ie-{i}", f"term-{i}") for i, store in enumerate(stores))
        )
        grants = [a for a in answers if isinstance(a, LeaseGrant)]
        assert len(grants) == 1, answers
        grant = grants[0]
        winner = stores[answers.index(grant)]
        loser = stores[(answers.index(grant) + 1) % 4]
        assert {a.holder for a in answers} == {grant.holder}
        renewed = await winner.renew(grant)
        # The answer to that renewal was lost: the holder still has the older version.
        again = await winner.renew(grant)
        assert again.fence == grant.fence and again.version != renewed.version
        assert await loser.acquire("ie-x", "term-x") == LeaseHolder(grant.holder, grant.fence)
        await winner.release(grant)  # an old version, but still ours: freed
        taken = await loser.acquire("ie-x", "term-x")
        assert isinstance(taken, LeaseGrant) and taken.fence > grant.fence
        with pytest.raises(LeaseLost) as lost:
            await winner.renew(again)
        assert lost.value.holder == "ie-x"
        await winner.release(again)  # not ours any more: nothing happens
        assert await winner.acquire("ie-y", "term-y") == LeaseHolder("ie-x", taken.fence)
    finally:
        for store in stores:
            await store.close()


async def test_a_store_that_is_down_at_start_is_waited_for() -> None:
    port = free_port()  # nothing listens there
    keeper = LeaseKeeper(NatsLeaseStore(f"nats://127.0.0.1:{port}", "c", 2.0), "ie-a", SHORT)
    task = asyncio.create_task(keeper.run())
    try:
        await eventually(lambda: keeper.store_error not in ("", "connecting"), 15, "an error")
        assert not keeper.may_send() and not task.done()
        assert keeper.describe()["storeConnected"] is False
    finally:
        await keeper.leave()
        await asyncio.wait_for(task, 10)
        await keeper.close()


async def test_a_bucket_with_another_ttl_is_measured_by_its_own(tmp_path: Path) -> None:
    server = NatsServer(tmp_path).start()
    try:
        first = NatsLeaseStore(server.url, "c", ttl_s=5.0)
        await first.start()  # creates the bucket with 5 s
        second = NatsLeaseStore(server.url, "c", ttl_s=20.0)
        await second.start()
        assert second.ttl_s == 5.0  # the server expires after 5 s: the holder counts on that
        keeper = LeaseKeeper(second, "ie-a", LeaseTiming(ttl_s=20.0))
        assert keeper.ttl_s == 5.0
        await first.close()
        await second.close()
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            info = await js.stream_info(f"KV_{lease_bucket('c')}")
            assert info.config.max_age == 5.0
        finally:
            await nc.close()
    finally:
        server.stop()


async def test_an_unreachable_firestore_says_so() -> None:
    store = FirestoreLeaseStore(firestore_client(f"127.0.0.1:{free_port()}"), "c", 2.0)
    with pytest.raises(StoreUnavailable):
        await store.start()
