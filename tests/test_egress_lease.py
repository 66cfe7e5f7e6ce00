"""The send lease's logic on a clock the test moves: the in-process store keeps time by the
same clock, so "the store's time" and the members' are one and every step is exact.

The real engines (nats-server, the Firestore emulator) and the real loop are in
tests/test_egress_lease_engines.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from ingress_egress.cluster.lease import LeaseGrant, LeaseHolder, MemoryLeaseStore
from ingress_egress.cluster.lease_keeper import LeaseKeeper, LeaseTiming
from ingress_egress.egress.lease import SendLease, SoloLease
from tests.support.service import eventually

TTL_S = 10.0
HEARTBEAT_S = 2.0
MARGIN_S = 2.0
TIMING = LeaseTiming(ttl_s=TTL_S, heartbeat_s=HEARTBEAT_S, margin_s=MARGIN_S)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Listener:
    """Records gains and losses in order, with what the lease said at that moment."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    async def gained(self, fence: int) -> None:
        self.events.append(("gained", fence))

    async def lost(self, why: str) -> None:
        self.events.append(("lost", why))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> MemoryLeaseStore:
    return MemoryLeaseStore(ttl=TTL_S, clock=clock)


def keeper(
    store: MemoryLeaseStore, clock: Clock, member: str, listener: Listener | None = None
) -> LeaseKeeper:
    listener = listener or Listener()
    return LeaseKeeper(store, member, TIMING, listener.gained, listener.lost, clock=clock)


async def test_the_first_member_takes_the_lease_and_the_other_sees_it(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    heard = Listener()
    a, b = keeper(store, clock, "ie-a", heard), keeper(store, clock, "ie-b")
    assert not a.may_send() and a.holder is None and a.fence == 0
    await a.tick()
    await b.tick()
    assert a.may_send() and a.holder == "ie-a" and a.fence == 1
    assert not b.may_send() and b.holder == "ie-a" and b.fence == 1
    await a.listeners_done()
    assert heard.events == [("gained", 1)]


async def test_a_holder_that_renews_keeps_the_lease_for_good(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a, b = keeper(store, clock, "ie-a"), keeper(store, clock, "ie-b")
    await a.tick()
    for _ in range(20):  # 40 s: four TTLs
        clock.advance(HEARTBEAT_S)
        await b.tick()
        await a.tick()
        assert a.may_send() and not b.may_send()
    assert a.fence == 1 and b.holder == "ie-a" and b.acquisitions == 0


async def test_may_send_ends_a_margin_before_anyone_can_take_over(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a, b = keeper(store, clock, "ie-a"), keeper(store, clock, "ie-b")
    await a.tick()
    renewed = clock.now
    # a is killed here: no more renewals.
    assert a.may_send(renewed + TTL_S - MARGIN_S - 0.001)
    assert not a.may_send(renewed + TTL_S - MARGIN_S)
    clock.advance(TTL_S - 0.001)
    await b.tick()
    assert not b.may_send() and b.holder == "ie-a"  # not expired in the store yet
    assert not a.may_send()  # ... but a already stopped
    clock.advance(0.001)
    await b.tick()
    assert b.may_send() and b.holder == "ie-b" and b.fence == 2


async def test_the_holder_hears_it_lost_the_lease_when_it_is_taken(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    heard = Listener()
    a, b = keeper(store, clock, "ie-a", heard), keeper(store, clock, "ie-b")
    await a.tick()
    clock.advance(TTL_S)  # a's loop was stuck (a long pause): b takes over
    await b.tick()
    assert b.may_send()
    await a.tick()
    await a.listeners_done()
    assert not a.may_send() and a.holder == "ie-b" and a.fence == 2
    assert [kind for kind, _ in heard.events] == ["gained", "lost"]


async def test_a_store_outage_stops_sending_before_the_ttl_and_nobody_sends_meanwhile(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    heard = Listener()
    a, b = keeper(store, clock, "ie-a", heard), keeper(store, clock, "ie-b")
    await a.tick()
    renewed = clock.now
    store.up = False
    while clock.now < renewed + TTL_S - MARGIN_S - HEARTBEAT_S / 2:
        clock.advance(HEARTBEAT_S / 2)
        await a.tick()
        await b.tick()
        assert a.may_send(), "a short outage must not stop a holder"
        assert not b.may_send()
    clock.now = renewed + TTL_S - MARGIN_S
    await a.tick()
    await a.listeners_done()
    assert not a.may_send() and not a.describe()["self"] and a.holder is None
    assert heard.events[-1][0] == "lost" and "not renewed" in str(heard.events[-1][1])
    assert a.store_connected is False and "down" in (a.describe()["storeError"] or "")
    store.up = True
    clock.now = renewed + TTL_S
    await b.tick()
    await a.tick()
    assert b.may_send() and not a.may_send() and b.fence == 2


async def test_a_holder_whose_own_record_survived_the_outage_takes_it_again(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a = keeper(store, clock, "ie-a")
    await a.tick()
    store.up = False
    clock.advance(TTL_S - MARGIN_S)
    await a.tick()
    assert not a.may_send()
    store.up = True
    await a.tick()  # the record is still a's (same term): nobody else could hold it
    assert a.may_send() and a.fence == 2 and a.acquisitions == 2


async def test_a_restarted_member_with_the_same_id_waits_for_the_ttl(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    before = keeper(store, clock, "ie-a")
    await before.tick()
    after = keeper(store, clock, "ie-a")  # same id, a new process: a new term
    await after.tick()
    assert not after.may_send() and after.holder == "ie-a"
    clock.advance(TTL_S)
    await after.tick()
    assert after.may_send() and after.fence == 2


async def test_release_hands_the_lease_over_at_once_after_sending_stopped(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    order: list[str] = []
    a, b = keeper(store, clock, "ie-a"), keeper(store, clock, "ie-b")

    async def lost(why: str) -> None:
        # the sender stops here; the lease must still be a's in the store meanwhile
        order.append(f"lost:{why}:record holder {store.record and store.record.holder}")

    a.listen(None, lost)
    await a.tick()
    await b.tick()
    await a.leave()
    assert order == ["lost:leaving:record holder ie-a"]
    assert not a.may_send()
    await b.tick()  # no time has passed
    assert b.may_send() and b.fence == 2


async def test_fences_strictly_increase_across_every_kind_of_handover(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    fences: list[int] = []
    members = [keeper(store, clock, f"ie-{i}") for i in range(3)]
    for round_ in range(9):
        for member in members:
            await member.tick()
        holder = next(m for m in members if m.may_send())
        fences.append(holder.fence)
        if round_ % 3 == 0:
            await holder.leave()
            members[members.index(holder)] = keeper(store, clock, holder.member)
        else:
            clock.advance(TTL_S)  # the holder dies (stops renewing)
            members.remove(holder)
            members.append(keeper(store, clock, holder.member))
        assert sum(m.may_send() for m in members) == 0
    assert fences == sorted(set(fences)) and len(fences) == 9


async def test_a_slow_listener_never_delays_a_renewal(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    release = asyncio.Event()

    async def slow_gained(fence: int) -> None:
        await release.wait()

    a = LeaseKeeper(store, "ie-a", TIMING, slow_gained, None, clock=clock)
    await a.tick()
    for _ in range(8):  # 16 s, longer than the TTL: the listener still has not returned
        clock.advance(HEARTBEAT_S)
        await a.tick()
        assert a.may_send()
    release.set()
    await a.listeners_done()
    await a.close()


async def test_a_failing_listener_is_logged_and_the_lease_goes_on(
    store: MemoryLeaseStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(fence: int) -> None:
        raise RuntimeError("sender bug")

    a = LeaseKeeper(store, "ie-a", TIMING, broken, None, clock=clock)
    await a.tick()
    await a.listeners_done()
    clock.advance(HEARTBEAT_S)
    await a.tick()
    assert a.may_send()
    assert "send lease listener failed" in caplog.text


async def test_describe_says_who_holds_it_since_when_and_how_fresh(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    a = LeaseKeeper(store, "ie-a", TIMING, clock=clock, wall=lambda: 1_765_000_000.0)
    b = keeper(store, clock, "ie-b")
    await a.tick()
    clock.advance(0.5)
    await b.tick()
    mine, theirs = a.describe(), b.describe()
    assert mine["self"] and mine["holder"] == "ie-a" and mine["fence"] == 1
    assert mine["heldSince"] == "2025-12-06T05:46:40.000Z"
    assert mine["lastRenewalAgeSeconds"] == 0.5 and mine["validForSeconds"] == 7.5
    assert mine["maySend"] and mine["acquisitions"] == 1 and mine["storeConnected"]
    assert not theirs["self"] and theirs["holder"] == "ie-a" and theirs["heldSince"] is None
    assert theirs["maySend"] is False and theirs["lastRenewalAgeSeconds"] is None
    clock.advance(TTL_S)
    await b.tick()
    assert b.describe()["fence"] == 2 and b.describe()["takeovers"] == 1


@dataclass
class HangingStore(MemoryLeaseStore):
    """Renewals that never answer once ``hanging`` (a store that accepted the connection
    and went silent), counted while they hang."""

    hanging: bool = False
    hung: int = 0

    async def renew(self, grant: LeaseGrant) -> LeaseGrant:
        if self.hanging:
            self.hung += 1
            try:
                await asyncio.Event().wait()
            finally:
                self.hung -= 1
        return await super().renew(grant)


async def test_the_loop_stops_sending_on_time_while_a_renewal_hangs() -> None:
    store = HangingStore(ttl=2.0, clock=time.monotonic)
    timing = LeaseTiming(ttl_s=2.0, heartbeat_s=0.2, margin_s=0.6, leave_wait_s=0.5)
    heard = Listener()
    a = LeaseKeeper(store, "ie-a", timing, heard.gained, heard.lost)
    task = asyncio.create_task(a.run())
    try:
        await eventually(a.may_send, 5, "a holds the lease")
        store.hanging = True
        await eventually(lambda: heard.events[-1][0] == "lost", 10, "a hears of the loss")
        assert store.hung == 1, "the renewal is still hanging: time alone ended the lease"
        assert not a.may_send()
        assert store.record is not None and store.record.holder == "ie-a"
    finally:
        await a.leave()
        await asyncio.wait_for(task, 5)
        await a.close()
    assert store.hung == 0 and heard.events[0] == ("gained", 1)


def test_timing_that_leaves_no_time_to_renew_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than the TTL"):
        LeaseTiming(ttl_s=4.0, heartbeat_s=2.0, margin_s=2.0)
    assert LeaseTiming().margin == 2.0
    assert LeaseTiming(ttl_s=2.0, heartbeat_s=0.5).margin == 0.5  # a quarter of a short TTL


async def test_the_store_engines_contract_on_the_memory_engine(
    store: MemoryLeaseStore, clock: Clock
) -> None:
    taken = await store.acquire("ie-a", "t1")
    assert isinstance(taken, LeaseGrant) and taken.fence == 1
    assert await store.acquire("ie-b", "t2") == LeaseHolder("ie-a", 1)
    renewed = await store.renew(taken)
    await store.release(taken)  # an old version of ours: still ours, freed
    assert isinstance(await store.acquire("ie-b", "t2"), LeaseGrant)
    with pytest.raises(Exception, match="taken by ie-b"):
        await store.renew(renewed)


async def test_solo_lease_is_held_from_start_to_leave() -> None:
    heard = Listener()
    solo: SendLease = SoloLease("ie-solo", heard.gained, heard.lost)
    assert not solo.may_send()
    task = asyncio.create_task(solo.run())
    await eventually(solo.may_send, 5, "the solo lease held")
    assert solo.holder == "ie-solo" and solo.fence == 1
    assert solo.describe()["mode"] == "solo" and solo.describe()["heldSince"]
    await solo.leave()
    await asyncio.wait_for(task, 5)
    assert not solo.may_send() and solo.holder is None
    assert heard.events == [("gained", 1), ("lost", "leaving")]


def test_the_cluster_keeper_is_a_send_lease(store: MemoryLeaseStore, clock: Clock) -> None:
    lease: SendLease = keeper(store, clock, "ie-a")  # structural typing, no import between them
    assert lease.describe()["mode"] == "cluster"
