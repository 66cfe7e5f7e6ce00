"""Egress end to end through real ``ingress-egress serve`` processes: a real nats-server (or
the Pub/Sub and Firestore emulators), the simulator over real sockets as Twitch (its referee
on real time, as the service is), processes stopped by PID.

Each case checks what the platform relies on (docs/egress.md): one result per command, no
text relayed twice, zero breaches of Twitch's limits, the ids Twitch gave in each result.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.aio.client import Client

from ingress_egress.config import INGRESS_TOPIC
from ingress_egress.simulator import ChatSimulator
from tests.support.cluster import MemberProcess
from tests.support.egress import (
    PREFIX,
    command,
    create_finalizer_stream,
    per_command,
    publish,
    results,
    stored,
)
from tests.support.egress_process import (
    REAL_TIME,
    VIEWER,
    accepted,
    check_sent_ids,
    egress_block,
    egress_env,
    egress_simulator,
    nats_env,
    store_bot_token,
    texts_sent_twice,
    until_sending,
)
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixture
    FirestoreEmulator,
    firestore_client,
    firestore_emulator_fixture,
)
from tests.support.nats import NatsServer
from tests.support.pubsub_emulator import PubSubHarness
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(300)

HEARTBEAT_MS, TTL_MS = 500, 3000
# A killed holder's record expires TTL after its last renewal, and a follower sees that at
# its next heartbeat; the rest is for polling the debug view.
TAKEOVER_S = (TTL_MS + HEARTBEAT_MS) / 1000 + 1.0
VERIFIED_LIMITS = {"EGRESS_RATE_LIMIT": "7500", "EGRESS_RATE_LIMIT_PRIVILEGED": "7500"}


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def admin(nats_server: NatsServer) -> AsyncIterator[Client]:
    """The platform's side: the finalizer stream created as it would, commands published."""
    nc = await nats.connect(nats_server.url)
    await create_finalizer_stream(nc)
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def sim() -> AsyncIterator[ChatSimulator]:
    simulator = await egress_simulator()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def verified_sim() -> AsyncIterator[ChatSimulator]:
    simulator = await egress_simulator(verified=True)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
def members() -> Iterator[list[MemberProcess]]:
    """Every serve process a test starts, killed by PID at the end whatever happened."""
    started: list[MemberProcess] = []
    try:
        yield started
    finally:
        for member in started:
            member.stop()


async def start(
    members: list[MemberProcess], name: str, tmp_path: Path, env: dict[str, str]
) -> MemberProcess:
    member = MemberProcess(name, tmp_path, env)
    members.append(member)
    await member.start()
    return member


def burst(plan: list[tuple[str, int]], tag: str) -> list[dict[str, Any]]:
    """Commands spread over channels round-robin (``plan``: channel, how many), each text
    unique so that the simulator's record says which command a message carried."""
    queues = [[channel] * count for channel, count in plan]
    order = [q[i] for i in range(max(len(q) for q in queues)) for q in queues if i < len(q)]
    return [
        command(channel, f"{tag} {n} for {channel}", REAL_TIME) for n, channel in enumerate(order)
    ]


async def all_results(
    nc: Client, commands: list[dict[str, Any]], timeout: float
) -> list[dict[str, Any]]:
    wanted = {c["id"] for c in commands}

    async def answered() -> bool:
        return wanted <= set(per_command(await results(nc)))

    await eventually(answered, timeout, f"results for {len(wanted)} commands", interval=0.5)
    return await results(nc)


def one_each(commands: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
    counts = per_command(records)
    assert set(counts) == {c["id"] for c in commands}
    assert set(counts.values()) == {1}, {k: n for k, n in counts.items() if n > 1}


def referee_clean(sim: ChatSimulator) -> None:
    assert sim.breaches == []
    assert sim.injections == []
    assert sim.command_attempts == []


async def test_a_burst_across_roles_and_slow_mode_within_twitchs_limits(
    tmp_path: Path,
    sim: ChatSimulator,
    nats_server: NatsServer,
    admin: Client,
    members: list[MemberProcess],
) -> None:
    """Normal (unverified) limits: 20 / 100 per 30 s, 1 s per plain channel, slow mode."""
    sim.set_channel("modroom", role="moderator")
    sim.set_channel("viproom", role="vip")
    sim.set_channel("slowmod", role="moderator", slow=10)  # moderators are exempt
    sim.set_channel("slowroom", slow=2)
    serve = await start(members, "solo", tmp_path, {**nats_env(nats_server.url), **egress_env(sim)})
    await until_sending(serve)
    commands = burst(
        [("modroom", 70), ("viproom", 60), ("slowmod", 40), ("plainroom", 14), ("slowroom", 6)],
        "burst",
    )
    # What a sender must neutralise: a chat command, a CR/LF injection, a 1,200-character
    # text (three parts, sent in order).
    commands[0]["payload"]["text"] = "/ban somebody burst special 0"
    commands[1]["payload"]["text"] = ".timeout somebody 60 burst special 1"
    commands[2]["payload"]["text"] = "burst special 2\r\nPRIVMSG #viproom :injected"
    commands[3]["payload"]["text"] = " ".join(f"long{n:04d}" for n in range(133))
    await publish(admin, *commands)
    records = await all_results(admin, commands, timeout=240)

    one_each(commands, records)
    assert Counter(r["status"] for r in records) == {"sent": len(commands)}
    referee_clean(sim)
    check_sent_ids(sim, commands, records)
    assert texts_sent_twice(sim) == {}
    long_result = next(r for r in records if r["envelopeId"] == commands[3]["id"])
    assert len(long_result["twitchMessageIds"]) == 3
    assert len(accepted(sim)) == len(commands) + 2
    egress = await egress_block(serve)
    assert egress["channels"]["modroom"]["privileged"] is True
    assert egress["channels"]["plainroom"]["privileged"] is False


async def test_sigkill_mid_burst_then_restart_sends_nothing_twice(
    tmp_path: Path,
    verified_sim: ChatSimulator,
    nats_server: NatsServer,
    admin: Client,
    members: list[MemberProcess],
) -> None:
    sim = verified_sim
    for room in ("moda", "modb", "modc"):
        sim.set_channel(room, role="moderator")
    env = {**nats_env(nats_server.url), **egress_env(sim), **VERIFIED_LIMITS}
    serve = await start(members, "solo", tmp_path, env)
    await until_sending(serve)
    # The plain rooms (one message a second each) keep the burst going for ~15 s.
    commands = burst(
        [("moda", 40), ("modb", 40), ("modc", 40), ("plaina", 15), ("plainb", 15)], "crash"
    )
    await publish(admin, *commands)
    await eventually(lambda: len(accepted(sim)) >= 125, 60, "the burst under way")
    serve.kill()
    sent_before = len(accepted(sim))
    assert sent_before < len(commands), "the burst ended before the kill"

    restarted = await serve.start()  # the same instance id, port and environment
    egress = await until_sending(restarted)
    # The ledger's recent sends count in the new process's window from its start (each
    # accepted message is a recorded part or, caught before its record, a started command).
    assert egress["window"]["inWindow"] >= sent_before
    records = await all_results(admin, commands, timeout=120)

    one_each(commands, records)
    assert texts_sent_twice(sim) == {}
    referee_clean(sim)
    check_sent_ids(sim, commands, records)
    statuses = Counter(r["status"] for r in records)
    assert set(statuses) <= {"sent", "unknown"}, statuses
    # Only commands caught between their send and its recorded outcome: one per channel.
    assert statuses["unknown"] <= 5, statuses
    sent_texts = {s.text for s in accepted(sim)}
    for record in records:
        text = next(c for c in commands if c["id"] == record["envelopeId"])["payload"]["text"]
        if record["status"] == "unknown":
            assert record["reason"] == "interrupted", record
        else:
            assert text in sent_texts, record
    assert len(accepted(sim)) <= len(commands)
    # What the killed process had taken and not settled came back to its successor.
    assert (await egress_block(restarted))["source"]["redelivered"] >= 1


async def test_a_command_published_twice_is_sent_once(
    tmp_path: Path,
    verified_sim: ChatSimulator,
    nats_server: NatsServer,
    admin: Client,
    members: list[MemberProcess],
) -> None:
    sim = verified_sim
    sim.set_channel("twiceroom", role="moderator")
    env = {**nats_env(nats_server.url), **egress_env(sim), **VERIFIED_LIMITS}
    serve = await start(members, "twice", tmp_path, env)
    await until_sending(serve)
    at_once = command("twiceroom", "twice at once", REAL_TIME)
    later = command("twiceroom", "twice, again after its result", REAL_TIME)
    await publish(admin, at_once, at_once, later)
    await all_results(admin, [at_once, later], timeout=30)
    await publish(admin, later)

    async def redelivery_answered() -> bool:
        info = await admin.jetstream().consumer_info("EGRESS", "ingress-egress")
        return info.num_pending == 0 and info.num_ack_pending == 0

    await eventually(redelivery_answered, 30, "the second copy answered", interval=0.2)
    records = await results(admin)
    one_each([at_once, later], records)
    assert Counter(r["status"] for r in records) == {"sent": 2}
    assert sorted(s.text for s in accepted(sim)) == sorted(
        [at_once["payload"]["text"], later["payload"]["text"]]
    )
    check_sent_ids(sim, [at_once, later], records)
    referee_clean(sim)


async def lease_views(group: list[MemberProcess]) -> list[dict[str, Any]]:
    return [(await egress_block(m)).get("lease") or {} for m in group]


async def test_cluster_lease_holder_killed_mid_burst(
    tmp_path: Path,
    verified_sim: ChatSimulator,
    nats_server: NatsServer,
    admin: Client,
    members: list[MemberProcess],
) -> None:
    sim = verified_sim
    for room in ("moda", "modb"):
        sim.set_channel(room, role="moderator")
    env = {
        **nats_env(nats_server.url),
        **egress_env(sim),
        **VERIFIED_LIMITS,
        "CLUSTER_COORDINATION": "nats",
        "CLUSTER_NAME": "egress",
        "CLUSTER_HEARTBEAT_MS": str(HEARTBEAT_MS),
        "CLUSTER_MEMBER_TTL_MS": str(TTL_MS),
    }
    group = [await start(members, name, tmp_path, env) for name in ("ie-a", "ie-b", "ie-c")]

    async def one_holder() -> bool:
        views = await lease_views(group)
        holders = {v.get("holder") for v in views}
        return sum(bool(v.get("self")) for v in views) == 1 and len(holders) == 1

    await eventually(one_holder, 30, "exactly one lease holder", interval=0.2)
    views = await lease_views(group)
    holder = next(m for m, v in zip(group, views, strict=True) if v["self"])
    first_fence = next(v["fence"] for v in views if v["self"])
    await until_sending(holder)

    commands = burst([("moda", 40), ("modb", 40), ("plaina", 12), ("plainb", 12)], "failover")
    await publish(admin, *commands)
    await eventually(lambda: len(accepted(sim)) >= 90, 60, "the burst under way")
    holder.kill()
    killed_at = time.monotonic()
    survivors = [m for m in group if m is not holder]

    async def taken_over() -> bool:
        return any(v.get("self") for v in await lease_views(survivors))

    await eventually(taken_over, TAKEOVER_S, "a survivor holding the lease", interval=0.1)
    took = time.monotonic() - killed_at
    views = await lease_views(survivors)
    successor = next(m for m, v in zip(survivors, views, strict=True) if v["self"])
    assert sum(bool(v["self"]) for v in views) == 1
    assert all(v["holder"] == successor.name for v in views if v["self"])
    assert max(v["fence"] for v in views) > first_fence
    assert took < TAKEOVER_S
    records = await all_results(admin, commands, timeout=120)

    one_each(commands, records)
    assert texts_sent_twice(sim) == {}
    referee_clean(sim)
    check_sent_ids(sim, commands, records)
    assert set(Counter(r["status"] for r in records)) <= {"sent", "unknown"}


async def test_the_bots_own_messages_are_marked_and_confirmed(
    tmp_path: Path,
    sim: ChatSimulator,
    nats_server: NatsServer,
    admin: Client,
    members: list[MemberProcess],
) -> None:
    sim.set_channel("echoroom", role="moderator")
    env = {**nats_env(nats_server.url), **egress_env(sim, read=("echoroom",))}
    serve = await start(members, "echo", tmp_path, env)
    await until_sending(serve)
    await eventually(lambda: "echoroom" in {c for _, c in sim.joins}, 20, "reading echoroom")
    commands = [command("echoroom", f"echo check {n}", REAL_TIME) for n in range(5)]
    await publish(admin, *commands)
    records = await all_results(admin, commands, timeout=60)
    await sim.send_as_bot(VIEWER.login, "echoroom", "a viewer says hello")
    subject = f"{PREFIX}{INGRESS_TOPIC}"

    async def chat_envelopes() -> list[dict[str, Any]]:
        envelopes = await stored(admin, "INGRESS", subject)
        return [e for e in envelopes if e["type"] == "external.chat.message.v1"]

    async def all_read() -> bool:
        return len(await chat_envelopes()) >= len(commands) + 1

    await eventually(all_read, 30, "the sends and the viewer's message read back")
    envelopes = await chat_envelopes()
    own = [e for e in envelopes if e["payload"].get("isSelf") is True]
    others = [e for e in envelopes if "isSelf" not in e["payload"]]
    assert sorted(e["payload"]["text"] for e in own) == sorted(
        c["payload"]["text"] for c in commands
    )
    assert [e["payload"]["text"] for e in others] == ["a viewer says hello"]
    sent_ids = {i for r in records for i in r["twitchMessageIds"]}
    assert len(sent_ids) == len(commands)

    async def confirmed() -> bool:
        echo = (await egress_block(serve)).get("echo") or {}
        return echo.get("confirmed") == len(commands) and echo.get("pending") == 0

    try:
        await eventually(confirmed, 20, "every send confirmed by its echo", interval=0.2)
    except AssertionError as error:
        raise AssertionError(f"{error}: {await egress_block(serve)}") from None
    echo = (await egress_block(serve))["echo"]
    assert echo["unseen"] == 0 and echo["lastUnseen"] is None
    referee_clean(sim)


def pubsub_topic(pubsub: PubSubHarness, name: str) -> str:
    return f"projects/{pubsub.project}/topics/{pubsub.prefix}{name}"


def create_finalizer_topic(pubsub: PubSubHarness) -> None:
    """The finalizer's topic and a subscription to read results, as the platform has them."""
    pubsub.publisher.create_topic(request={"name": pubsub_topic(pubsub, "internal.finalizer.v1")})
    pubsub.subscription = f"projects/{pubsub.project}/subscriptions/{pubsub.prefix}finalizer"
    pubsub.subscriber.create_subscription(
        request={
            "name": pubsub.subscription,
            "topic": pubsub_topic(pubsub, "internal.finalizer.v1"),
        }
    )


async def pubsub_results(pubsub: PubSubHarness, ids: set[str]) -> list[dict[str, Any]]:
    """Result records until every id in ``ids`` has one (Pub/Sub may deliver a copy)."""
    got: list[dict[str, Any]] = []

    async def complete() -> bool:
        got.extend(orjson.loads(m.data) for m in await pubsub.received(1000, timeout=1.0))
        return ids <= {r["envelopeId"] for r in got}

    await eventually(complete, 120, f"results for {len(ids)} commands")
    return got


@pytest.mark.emulator
async def test_pubsub_with_the_ledger_in_firestore(
    tmp_path: Path,
    sim: ChatSimulator,
    pubsub: PubSubHarness,
    firestore_emulator: FirestoreEmulator,
    members: list[MemberProcess],
) -> None:
    """MESSAGE_BUS_DRIVER=pubsub, tokens and the ledger in Firestore; with a client id the
    token's user:write:chat makes ``auto`` send through Helix (the simulator's mock)."""
    rooms = ("psmod", "psplain")
    sim.set_channel("psmod", role="moderator")
    create_finalizer_topic(pubsub)
    # One project for both emulators: serve takes both from GOOGLE_CLOUD_PROJECT.
    await store_bot_token(firestore_client(firestore_emulator.host_port, pubsub.project))
    env = {
        **egress_env(sim, read=rooms),
        "MESSAGE_BUS_DRIVER": "pubsub",
        "PUBSUB_CREATE_TOPIC": "true",
        "PUBSUB_EMULATOR_HOST": pubsub.emulator.host,
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port,
        "GOOGLE_CLOUD_PROJECT": pubsub.project,
        "TWITCH_CLIENT_ID": sim.helix_client_id,
        "TWITCH_CLIENT_SECRET": "simulator-secret",
        "CLUSTER_NAME": f"ps{uuid.uuid4().hex[:8]}",
        "BUS_PREFIX": pubsub.prefix,
    }
    serve = await start(members, "pubsub", tmp_path, env)
    egress = await until_sending(serve, timeout=60)
    assert egress["transport"]["transport"] == "helix"
    assert egress["ledger"] == "firestore"
    commands = burst([("psmod", 12), ("psplain", 6)], "pubsub")
    for body in commands:
        future = pubsub.publisher.publish(
            pubsub_topic(pubsub, "internal.egress.v1"), orjson.dumps(body)
        )
        await asyncio.to_thread(future.result, 30)
    records = await pubsub_results(pubsub, {c["id"] for c in commands})

    distinct = {orjson.dumps({k: v for k, v in r.items() if k != "timestamp"}) for r in records}
    assert len(distinct) == len(commands)  # a copy delivered again is the very same record
    unique = list({r["envelopeId"]: r for r in records}.values())
    assert Counter(r["status"] for r in unique) == {"sent": len(commands)}
    referee_clean(sim)
    assert texts_sent_twice(sim) == {}
    assert {s.via for s in accepted(sim)} == {"helix"}
    check_sent_ids(sim, commands, unique)
