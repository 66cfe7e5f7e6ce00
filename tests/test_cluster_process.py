"""The cluster as deployed: real ``ingress-egress serve`` processes, a real nats-server (bus
and coordination store) or the Firestore emulator, and the simulator producing chat on the
clock whether anyone listens or not (what nobody was joined for is lost, as on Twitch).

Each case checks the three properties of docs/scaling.md ("The cluster"): no message is
produced while its channel has no live reader; every channel is back on two readers within
the member TTL plus the JOIN time; every message heard is on the stream exactly once.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from ingress_egress.cluster.assignment import readers_of
from ingress_egress.config import INGRESS_TOPIC
from ingress_egress.simulator import ChatSimulator
from tests.support.cluster import (
    TTL_MS,
    MemberProcess,
    expected_ids,
    latest_receivers,
    member_env,
    stream_ids,
    wait_replicated,
)
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    firestore_emulator_fixture,
)
from tests.support.nats import NatsServer
from tests.support.scrape import CLUSTER_METRICS, missing_from_scrape, samples
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(240)

CHANNELS = tuple(f"chan{i:02d}" for i in range(60))
RATE = 300  # msg/s over all channels: 5 per channel per second
RESTORE_S = TTL_MS / 1000 + 10  # the TTL, then JOINs (well within one JOIN window here)


class Cluster:
    def __init__(self, tmp_path: Path, sim: ChatSimulator, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.sim = sim
        self.env = env
        self.members: dict[str, MemberProcess] = {}

    async def add(self, name: str) -> MemberProcess:
        member = await MemberProcess(name, self.tmp_path, self.env).start()
        self.members[name] = member
        return member

    async def all_ready(self, timeout: float = 60.0) -> None:
        async def ready() -> bool:
            return all([await m.ready() for m in self.members.values()])

        try:
            await eventually(ready, timeout, "members ready", interval=0.25)
        except AssertionError:
            tails = "\n".join(m.log_tail(1500) for m in self.members.values())
            raise AssertionError(f"members not ready:\n{tails}") from None

    async def settled(self, timeout: float = 60.0) -> None:
        """Every member sees all of them, owns its share and has joined it, and hands
        nothing over any more (wait_replicated alone passes before a newcomer even starts
        joining: the old readers are still there)."""
        views: list[dict | None] = []

        async def settled() -> bool:
            views[:] = [await m.debug() for m in self.members.values()]
            if not all(v is not None and _settled(v, len(self.members)) for v in views):
                return False
            return _shares_add_up([v for v in views if v is not None])

        try:
            await eventually(settled, timeout, "cluster settled", interval=0.25)
        except AssertionError:
            raise AssertionError(f"cluster not settled: {views}") from None

    def stop(self) -> None:
        for member in self.members.values():
            member.stop()


def _settled(debug: dict, members: int) -> bool:
    cluster = debug["cluster"]
    return (
        len(cluster["members"]) == members
        and cluster["owned"]["count"] > 0
        and not cluster["handingOver"]
        and cluster["underReplicated"]["count"] == 0
        and len(debug["joinedChannels"]) == cluster["owned"]["count"]
    )


def _shares_add_up(views: list[dict]) -> bool:
    """Every channel owned by exactly ``replicas`` members: nobody keeps more than its share
    (a member that has not handed its surplus over yet reads channels twice over)."""
    cluster = views[0]["cluster"]
    replicas = min(cluster["replicas"], len(views))
    owned = sum(v["cluster"]["owned"]["count"] for v in views)
    return owned == replicas * cluster["wantedChannels"]


@asynccontextmanager
async def running_cluster(
    tmp_path: Path, sim: ChatSimulator, env: dict[str, str], names: tuple[str, ...]
) -> AsyncIterator[Cluster]:
    """Members started, every channel on two readers, all ready and settled (no hand-over
    still to come); stopped by PID after."""
    cluster = Cluster(tmp_path, sim, env)
    try:
        for name in names:
            await cluster.add(name)
        await wait_replicated(sim, 2, 60)
        await cluster.all_ready()
        await cluster.settled()
        yield cluster
    finally:
        cluster.stop()


def nats_env(sim: ChatSimulator, nats: NatsServer, cluster: str, **extra: str) -> dict[str, str]:
    """Members on nats-server for both the bus and the coordination store."""
    return member_env(
        sim.port, CHANNELS, "nats", cluster, MESSAGE_BUS_DRIVER="nats", NATS_URL=nats.url, **extra
    )


THREE = ("ie-a", "ie-b", "ie-c")


@pytest.fixture
async def live_sim() -> AsyncIterator[ChatSimulator]:
    async with ChatSimulator(live_channels=CHANNELS, rate=RATE, live_events_every=25) as sim:
        yield sim


@pytest.fixture
def nats(tmp_path: Path):
    server = NatsServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


async def settle_and_check(
    cluster: Cluster, nats_url: str, mark: int, what: str
) -> dict[str, float]:
    """Two more seconds of live chat, then stop the clock, then check no message after
    ``mark`` went unheard and every heard one is on the stream exactly once."""
    sim = cluster.sim
    produced = len(sim.live_log)
    await eventually(lambda: len(sim.live_log) >= produced + 2 * RATE, 30, "more live chat")
    sim.stop_live()
    watched = sim.live_log[mark:]
    unheard = [m for m in watched if m.receivers == 0]
    assert not unheard, f"{what}: {len(unheard)} messages produced with no live reader"
    heard = [m for m in sim.live_log if m.receivers > 0]
    on_stream = await stream_ids(nats_url, INGRESS_TOPIC, len(heard))
    want = expected_ids(heard)
    missing = [i for i in want if on_stream[i] == 0]
    twice = {i: n for i, n in on_stream.items() if n > 1}
    assert not missing, f"{what}: {len(missing)} of {len(want)} heard messages not on the stream"
    assert not twice, f"{what}: {len(twice)} envelopes stored more than once"
    assert set(on_stream) == set(want), "the stream holds envelopes nobody produced"
    return {"watched": len(watched), "heard": len(heard)}


async def test_sigkill_of_one_of_three_loses_nothing(
    tmp_path: Path, live_sim: ChatSimulator, nats: NatsServer
) -> None:
    env = nats_env(live_sim, nats, "kill")
    async with running_cluster(tmp_path, live_sim, env, THREE) as cluster:
        debug = await cluster.members["ie-a"].debug()
        assert debug is not None and len(debug["cluster"]["members"]) == 3
        mark = len(live_sim.live_log)
        victim = cluster.members.pop("ie-c")
        victim.kill()
        # Right after the kill its channels are on one reader, never on none.
        assert min(latest_receivers(live_sim).values()) >= 1
        # The survivors see ie-c gone (its TTL) and take its share (wait_replicated alone
        # sometimes passed while ie-a still listed ie-c).
        await cluster.settled(RESTORE_S)
        restored = await wait_replicated(live_sim, 2, RESTORE_S)
        assert restored < RESTORE_S
        debug = await cluster.members["ie-a"].debug()
        assert debug is not None
        assert [m["id"] for m in debug["cluster"]["members"]] == ["ie-a", "ie-b"]
        assert debug["cluster"]["underReplicated"]["count"] == 0
        # The cluster figures the alerts and the dashboard use, from a real scrape.
        response = await cluster.members["ie-a"].get("/metrics")
        assert response is not None
        assert missing_from_scrape(response.text, CLUSTER_METRICS) == set()
        scrape = samples(response.text)
        assert scrape["ingress_cluster_members"] == [({}, 2.0)]
        assert scrape["ingress_cluster_replicas"] == [({}, 2.0)]
        assert scrape["ingress_cluster_channels_owned"] == [({}, float(len(CHANNELS)))]
        assert scrape["ingress_cluster_channels_under_replicated"] == [({}, 0.0)]
        assert scrape["ingress_cluster_store_connected"] == [({}, 1.0)]
        await settle_and_check(cluster, nats.url, mark, "SIGKILL")


async def test_rolling_replacement_loses_nothing(
    tmp_path: Path, live_sim: ChatSimulator, nats: NatsServer
) -> None:
    env = nats_env(live_sim, nats, "roll")
    async with running_cluster(tmp_path, live_sim, env, THREE) as cluster:
        mark = len(live_sim.live_log)
        await cluster.add("ie-d")  # the new revision's instance
        await cluster.settled()
        await wait_replicated(live_sim, 2, RESTORE_S)
        await cluster.all_ready()
        old = cluster.members.pop("ie-a")
        code, took = await old.terminate()
        assert code == 0, old.log_tail()
        assert took < 10, "past Cloud Run's 10 s grace"
        assert "every channel handed over" in old.log_tail(20_000)
        await wait_replicated(live_sim, 2, RESTORE_S)
        await settle_and_check(cluster, nats.url, mark, "rolling replacement")


async def test_scaling_out_moves_only_the_newcomers_share(
    tmp_path: Path, live_sim: ChatSimulator, nats: NatsServer
) -> None:
    env = nats_env(live_sim, nats, "scale")
    async with running_cluster(tmp_path, live_sim, env, ("ie-a", "ie-b")) as cluster:
        joins, parts = len(live_sim.joins), len(live_sim.parts)
        first_new_connection = live_sim.connections_made
        await cluster.add("ie-c")
        await cluster.settled()
        await wait_replicated(live_sim, 2, RESTORE_S)
        won = {c for c in CHANNELS if "ie-c" in readers_of(c, ["ie-a", "ie-b", "ie-c"], 2)}
        new_joins = live_sim.joins[joins:]
        # Every JOIN since is the newcomer's (its connections are the new ones), for the
        # channels it won; the old members only PARTed channels the newcomer took.
        assert {conn >= first_new_connection for conn, _ in new_joins} == {True}
        assert {channel for _, channel in new_joins} == won
        parted = [channel for _, channel in live_sim.parts[parts:]]
        assert set(parted) == won and len(parted) == len(won)
        # The rendezvous share: the newcomer reads 2/3 of the channels.
        assert abs(len(won) / len(CHANNELS) - 2 / 3) < 0.2
        mark = len(live_sim.live_log)
        await settle_and_check(cluster, nats.url, mark, "scale 2 -> 3")


async def test_the_store_restarting_changes_no_reader(
    tmp_path: Path, live_sim: ChatSimulator, nats: NatsServer
) -> None:
    env = nats_env(live_sim, nats, "restart")
    async with running_cluster(tmp_path, live_sim, env, THREE) as cluster:
        joins, parts = len(live_sim.joins), len(live_sim.parts)
        mark = len(live_sim.live_log)
        nats.stop()
        await asyncio.sleep(TTL_MS / 1000 + 2)  # fixed wait: down for longer than the TTL
        assert not await cluster.members["ie-a"].ready()
        nats.start()
        await cluster.all_ready(60)
        await asyncio.sleep(TTL_MS / 1000)  # fixed wait: a TTL more, for a late rebalance
        assert live_sim.joins[joins:] == [] and live_sim.parts[parts:] == []
        assert set(latest_receivers(live_sim).values()) == {2}
        await settle_and_check(cluster, nats.url, mark, "store restart")


async def test_firestore_coordination_survives_a_sigkill(
    tmp_path: Path,
    live_sim: ChatSimulator,
    nats: NatsServer,
    firestore_emulator: FirestoreEmulator,
) -> None:
    firestore_emulator.clear()
    env = member_env(
        live_sim.port,
        CHANNELS,
        "firestore",
        "fs-kill",
        MESSAGE_BUS_DRIVER="nats",
        NATS_URL=nats.url,
        FIRESTORE_EMULATOR_HOST=firestore_emulator.host_port,
        GOOGLE_CLOUD_PROJECT=firestore_emulator.project,
    )
    async with running_cluster(tmp_path, live_sim, env, THREE) as cluster:
        mark = len(live_sim.live_log)
        cluster.members.pop("ie-b").kill()
        assert min(latest_receivers(live_sim).values()) >= 1
        await wait_replicated(live_sim, 2, RESTORE_S)
        await settle_and_check(cluster, nats.url, mark, "SIGKILL (firestore)")


async def test_the_wanted_list_is_changed_for_the_whole_cluster(
    tmp_path: Path, live_sim: ChatSimulator, nats: NatsServer
) -> None:
    """The admin route on one member and SIGHUP on another change every member's list."""
    channels_file = tmp_path / "channels.txt"
    channels_file.write_text("\n".join(CHANNELS[:10]) + "\n")
    env = member_env(
        live_sim.port,
        (),
        "nats",
        "wanted",
        MESSAGE_BUS_DRIVER="nats",
        NATS_URL=nats.url,
        TWITCH_CHANNELS_FILE=str(channels_file),
        ADMIN_TOKEN="admin-secret",
    )
    cluster = Cluster(tmp_path, live_sim, env)
    try:
        a, b = await cluster.add("ie-a"), await cluster.add("ie-b")
        await cluster.all_ready()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.port}") as client:
            response = await client.post(
                "/_admin/channels",
                json={"add": ["extra_one"], "remove": [CHANNELS[0]]},
                headers={"Authorization": "Bearer admin-secret"},
            )
        assert response.status_code == 200, response.text
        assert response.json()["added"] == ["extra_one"]

        await eventually_joined(live_sim, "extra_one", 2)
        debug = await b.debug()
        assert debug is not None and debug["cluster"]["wantedChannels"] == 10
        channels_file.write_text("\n".join(CHANNELS[20:25]) + "\n")
        b.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        for channel in CHANNELS[20:25]:
            await eventually_joined(live_sim, channel, 2)

        async def a_follows() -> bool:
            debug = await a.debug()
            return debug is not None and sorted(debug["joinedChannels"]) == list(CHANNELS[20:25])

        await eventually(a_follows, 20, "ie-a joined the file's channels", interval=0.2)
    finally:
        cluster.stop()


async def eventually_joined(sim: ChatSimulator, channel: str, connections: int) -> None:
    """Wait until ``channel`` was JOINed by ``connections`` distinct connections."""
    await eventually(
        lambda: len({conn for conn, ch in sim.joins if ch == channel}) >= connections,
        20,
        f"{channel} joined by {connections}",
        interval=0.1,
    )
