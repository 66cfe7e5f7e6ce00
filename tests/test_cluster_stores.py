"""The coordination store's contract, on the real engines: nats-server's JetStream key-value
buckets and the Firestore emulator. Both must say the same things the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ingress_egress.cluster.firestore_store import FirestoreStore
from ingress_egress.cluster.nats_store import NatsKvStore
from ingress_egress.cluster.store import CoordinationStore, Heartbeat, StoreUnavailable
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    firestore_emulator_fixture,
)
from tests.support.nats import NatsServer
from tests.support.processes import free_port
from tests.support.service import eventually

pytestmark = pytest.mark.timeout(90)

TTL_S = 2.0


@pytest.fixture(params=["nats", "firestore"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield request.param


@pytest.fixture
async def stores(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator:
    """A factory of stores of one cluster on one engine (one store per simulated member)."""
    made: list[CoordinationStore] = []
    server: NatsServer | None = None
    if engine == "nats":
        server = NatsServer(tmp_path).start()
    else:
        emulator: FirestoreEmulator = request.getfixturevalue("firestore_emulator")
        emulator.clear()

    async def make(cluster: str = "test-cluster") -> CoordinationStore:
        store: CoordinationStore
        if server is not None:
            store = NatsKvStore(server.url, cluster, TTL_S)
        else:
            store = FirestoreStore(emulator.client(), cluster, TTL_S)
        await store.start()
        made.append(store)
        return store

    try:
        yield make
    finally:
        for store in made:
            await store.close()
        if server is not None:
            server.stop()


async def test_members_are_live_while_they_beat_and_gone_after_the_ttl(stores) -> None:
    a, b = await stores(), await stores()
    await a.heartbeat(Heartbeat("ie-a", ("x", "y"), seq=1))
    await b.heartbeat(Heartbeat("ie-b", (), seq=1))
    members = await a.members()
    assert set(members) == {"ie-a", "ie-b"}
    assert members["ie-a"].joined == {"x", "y"} and members["ie-a"].seq == 1
    for seq in range(2, 6):  # b keeps beating past a's TTL; a stops
        await asyncio.sleep(TTL_S / 2)  # fixed wait: the store's TTL runs on real time
        await b.heartbeat(Heartbeat("ie-b", ("z",), seq=seq))

    async def only_b() -> bool:
        return set(await b.members()) == {"ie-b"}

    await eventually(only_b, TTL_S * 3, "a's record expires by TTL", interval=0.1)
    assert (await b.members())["ie-b"].joined == {"z"}


async def test_leave_removes_a_member_at_once(stores) -> None:
    a, b = await stores(), await stores()
    await a.heartbeat(Heartbeat("ie-a", seq=1))
    await b.heartbeat(Heartbeat("ie-b", seq=1))
    await a.leave("ie-a")
    assert set(await b.members()) == {"ie-b"}


async def test_clusters_with_different_names_do_not_mix(stores) -> None:
    a, other = await stores("one"), await stores("two")
    await a.heartbeat(Heartbeat("ie-a", seq=1))
    await other.heartbeat(Heartbeat("ie-x", seq=1))
    assert set(await a.members()) == {"ie-a"}
    assert set(await other.members()) == {"ie-x"}
    await a.seed_wanted(("alpha",))
    assert await other.wanted() is None


async def test_the_first_seed_wins_and_changes_are_atomic(stores) -> None:
    a, b = await stores(), await stores()
    assert await a.wanted() is None
    assert await a.seed_wanted(("alpha", "beta")) == ("alpha", "beta")
    assert await b.seed_wanted(("gamma",)) == ("alpha", "beta")  # already seeded
    # Many concurrent changes from two members: none is lost (compare-and-set).
    adds = [f"chan{i}" for i in range(12)]
    await asyncio.gather(
        *((a if i % 2 else b).change_wanted((name,), ()) for i, name in enumerate(adds))
    )
    wanted = await a.wanted()
    assert wanted is not None and set(wanted) == {"alpha", "beta", *adds}
    assert await b.change_wanted((), ("alpha",)) == tuple(c for c in wanted if c != "alpha")
    assert await a.replace_wanted(("only",)) == ("only",)
    assert await b.wanted() == ("only",)


async def test_an_unreachable_store_says_so(engine: str, request: pytest.FixtureRequest) -> None:
    port = free_port()  # nothing listens there
    if engine == "nats":
        store: CoordinationStore = NatsKvStore(f"nats://127.0.0.1:{port}", "c", TTL_S)
        with pytest.raises(StoreUnavailable):
            await store.start()
    else:
        from tests.support.firestore_emulator import firestore_client

        store = FirestoreStore(firestore_client(f"127.0.0.1:{port}"), "c", TTL_S)
        with pytest.raises(StoreUnavailable):
            await store.heartbeat(Heartbeat("ie-a", seq=1))
    await store.close()


async def test_nats_watch_wakes_on_join_and_leave(tmp_path: Path) -> None:
    server = NatsServer(tmp_path).start()
    a = NatsKvStore(server.url, "watched", TTL_S)
    b = NatsKvStore(server.url, "watched", TTL_S)
    try:
        await a.start()
        await b.start()
        # a's watchers report their (empty) initial state before the changes that count.
        await eventually(a.changed.is_set, 5, "a's watch started")
        a.changed.clear()
        await b.heartbeat(Heartbeat("ie-b", seq=1))
        await asyncio.wait_for(a.changed.wait(), 5)
        a.changed.clear()
        await b.leave("ie-b")
        await asyncio.wait_for(a.changed.wait(), 5)
        a.changed.clear()
        await b.heartbeat(Heartbeat("ie-b", seq=2))
        await asyncio.wait_for(a.changed.wait(), 5)
        a.changed.clear()
        # Expiry (no leave): nats-server places a marker the watcher sees.
        await asyncio.wait_for(a.changed.wait(), TTL_S * 4)
        assert set(await a.members()) == set()
    finally:
        await a.close()
        await b.close()
        server.stop()


async def test_a_nats_store_that_never_connected_refuses_every_call() -> None:
    """A member stopped before it ever reached the store (SIGTERM during start-up)."""
    store = NatsKvStore(f"nats://127.0.0.1:{free_port()}", "c", TTL_S)
    for call in (
        store.leave("ie-a"),
        store.heartbeat(Heartbeat("ie-a")),
        store.members(),
        store.wanted(),
        store.change_wanted(("x",), ()),
    ):
        with pytest.raises(StoreUnavailable, match="not connected"):
            await call
    await store.close()
