"""Egress on NATS: the command source and the result publisher against a real nats-server."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_nats import NatsCommandSource
from ingress_egress.bus.egress_nats_results import NatsResultPublisher
from ingress_egress.bus.egress_protocol import DestinationMissing, ReceivedCommand
from tests.support.nats import NatsServer
from tests.support.service import eventually

pytestmark = pytest.mark.timeout(120)

PREFIX = "test."
COMMANDS = f"{PREFIX}internal.egress.v1"
DLQ = f"{PREFIX}internal.egress.dlq.v1"
FINALIZER = f"{PREFIX}internal.finalizer.v1"


def command(text: str = "hi") -> bytes:
    return json.dumps(
        {
            "v": "1",
            "id": str(uuid.uuid4()),
            "type": "egress.chat.message.v1",
            "target": {"platform": "twitch", "channel": "forsen"},
            "payload": {"text": text},
        }
    ).encode()


@pytest.fixture
async def admin(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def source(nats_server: NatsServer) -> AsyncIterator[NatsCommandSource]:
    started = NatsCommandSource(nats_server.url, prefix=PREFIX, ack_wait_s=1.0)
    await started.start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
async def results(nats_server: NatsServer) -> AsyncIterator[NatsResultPublisher]:
    publisher = NatsResultPublisher(nats_server.url, prefix=PREFIX)
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.close()


async def publish_command(admin: Client, data: bytes) -> None:
    await admin.jetstream().publish(COMMANDS, data)


async def receive_until(
    source: NatsCommandSource, wanted: int, attempts: int = 20
) -> list[ReceivedCommand]:
    got: list[ReceivedCommand] = []
    for _ in range(attempts):
        got += await source.receive(wanted - len(got), timeout_s=1.0)
        if len(got) >= wanted:
            return got
    raise AssertionError(f"received {len(got)} of {wanted} commands")


async def create_finalizer_stream(admin: Client) -> None:
    """As the platform's finalizer would: its own stream, de-duplicating by Nats-Msg-Id."""
    await admin.jetstream().add_stream(
        StreamConfig(name="FINALIZER", subjects=[FINALIZER], duplicate_window=120)
    )


async def stored(admin: Client, stream: str, subject: str) -> list[nats.aio.msg.Msg]:
    js = admin.jetstream()
    info = await js.stream_info(stream, subjects_filter=subject)
    count = (info.state.subjects or {}).get(subject, 0)
    messages = []
    seq = info.state.first_seq
    while len(messages) < count and seq <= info.state.last_seq:
        try:
            message = await js.get_msg(stream, seq)
        except NotFoundError:
            message = None
        if message is not None and message.subject == subject:
            messages.append(message)
        seq += 1
    return messages


async def test_a_stream_is_created_only_when_none_captures_the_subject(
    source: NatsCommandSource, admin: Client
) -> None:
    info = await admin.jetstream().stream_info("EGRESS")
    assert info.config.subjects == [COMMANDS, DLQ]
    assert info.config.retention == RetentionPolicy.WORK_QUEUE
    assert source.describe()["stream"] == "EGRESS"
    assert source.describe()["streamCreated"] is True
    consumer = await admin.jetstream().consumer_info("EGRESS", "ingress-egress")
    assert consumer.config.durable_name == "ingress-egress"
    assert consumer.config.ack_policy == AckPolicy.EXPLICIT
    assert consumer.config.filter_subject == COMMANDS


async def test_the_platform_stream_that_captures_the_subject_is_used(
    nats_server: NatsServer, admin: Client
) -> None:
    await admin.jetstream().add_stream(
        StreamConfig(name="PLATFORM", subjects=[f"{PREFIX}internal.>"])
    )
    source = NatsCommandSource(nats_server.url, prefix=PREFIX, consumer="egress-a")
    await source.start()
    try:
        assert source.describe()["stream"] == "PLATFORM"
        assert source.describe()["streamCreated"] is False
        with pytest.raises(NotFoundError):
            await admin.jetstream().stream_info("EGRESS")
        data = command()
        await publish_command(admin, data)
        [received] = await receive_until(source, 1)
        assert received.data == data
        assert received.delivery == 1
    finally:
        await source.close()


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (ConsumerConfig(ack_policy=AckPolicy.NONE), "explicit acks"),
        (
            ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, filter_subject=f"{PREFIX}other"),
            f"consumes {PREFIX}other, not {COMMANDS}",
        ),
    ],
    ids=["no-acks", "other-subject"],
)
async def test_an_existing_consumer_of_the_wrong_kind_is_refused_with_the_reason(
    nats_server: NatsServer, admin: Client, config: ConsumerConfig, reason: str
) -> None:
    js = admin.jetstream()
    await js.add_stream(StreamConfig(name="EGRESS", subjects=[COMMANDS, f"{PREFIX}other"]))
    await js.add_consumer("EGRESS", config, durable_name="ingress-egress")
    source = NatsCommandSource(nats_server.url, prefix=PREFIX)
    with pytest.raises(BusError, match=reason) as raised:
        await source.start()
    assert raised.value.permanent
    assert source.describe()["lastError"] == str(raised.value)
    await source.close()


async def test_the_durable_consumer_survives_a_client_restart(
    nats_server: NatsServer, admin: Client, source: NatsCommandSource
) -> None:
    first, second = command("one"), command("two")
    await publish_command(admin, first)
    await publish_command(admin, second)
    received = await receive_until(source, 2)
    assert [item.data for item in received] == [first, second]
    await received[0].ack()
    await source.close()  # the second is left unsettled, as by a crash

    restarted = NatsCommandSource(nats_server.url, prefix=PREFIX, ack_wait_s=1.0)
    await restarted.start()
    try:
        [again] = await receive_until(restarted, 1)
        assert again.data == second
        assert again.delivery == 2
        assert again.bus_id == received[1].bus_id
        assert restarted.describe()["redelivered"] == 1
        await again.ack()
        info = await admin.jetstream().stream_info("EGRESS")
        assert info.state.messages == 0  # a work queue: acknowledged commands are gone
    finally:
        await restarted.close()


async def test_nak_redelivers_and_term_never_does(admin: Client, source: NatsCommandSource) -> None:
    naked, termed = command("again"), command("never")
    await publish_command(admin, naked)
    await publish_command(admin, termed)
    first = await receive_until(source, 2)
    await first[0].nak()
    await first[1].term()
    [again] = await receive_until(source, 1)
    assert (again.data, again.delivery) == (naked, 2)
    await again.ack()
    marker = command("marker")
    await publish_command(admin, marker)
    [later] = await receive_until(source, 1)
    assert later.data == marker  # the termed command did not come back before it
    await later.ack()
    described = source.describe()
    assert (described["acked"], described["naked"], described["termed"]) == (2, 1, 1)
    assert described["outstanding"] == 0


async def test_a_delayed_nak_and_in_progress_keep_the_command(
    admin: Client, source: NatsCommandSource
) -> None:
    data = command()
    await publish_command(admin, data)
    [held] = await receive_until(source, 1)
    await held.in_progress()
    await held.nak(delay_s=0.5)
    await held.ack()  # already settled: ignored, it still comes back
    [again] = await receive_until(source, 1)
    assert (again.data, again.delivery) == (data, 2)
    await again.ack()


async def test_ack_after_the_result_is_published_and_the_result_deduplicated(
    admin: Client, source: NatsCommandSource, results: NatsResultPublisher
) -> None:
    await create_finalizer_stream(admin)
    await publish_command(admin, command())
    [received] = await receive_until(source, 1)
    record = b'{"type":"internal.finalizer.status.v1","status":"sent"}'
    record_id = "cmd-1:ingress-egress:egress"
    published = await results.publish_result(record, message_id=record_id)
    assert (published.subject, published.duplicate) == (FINALIZER, False)
    await received.ack()
    again = await results.publish_result(record, message_id=record_id)  # after a crash
    assert again.duplicate is True
    [kept] = await stored(admin, "FINALIZER", FINALIZER)
    assert kept.data == record
    assert kept.headers is not None and kept.headers["Nats-Msg-Id"] == record_id
    assert (await admin.jetstream().stream_info("EGRESS")).state.messages == 0
    assert results.describe()["duplicates"] == 1


async def test_destination_missing_until_the_platform_creates_the_stream(
    admin: Client, results: NatsResultPublisher
) -> None:
    record = b'{"status":"sent"}'
    with pytest.raises(DestinationMissing) as missing:
        await results.publish_result(record, message_id="a:ingress-egress:egress")
    assert missing.value.subject == FINALIZER
    assert not missing.value.permanent
    assert results.describe()["destinationMissing"] == 1
    await create_finalizer_stream(admin)
    published = await results.publish_result(record, message_id="a:ingress-egress:egress")
    assert published.subject == FINALIZER
    assert [item.data for item in await stored(admin, "FINALIZER", FINALIZER)] == [record]


async def test_a_command_names_its_own_destination_but_never_a_wildcard(
    admin: Client, results: NatsResultPublisher
) -> None:
    custom = f"{PREFIX}team.results.v1"
    await admin.jetstream().add_stream(StreamConfig(name="TEAM", subjects=[custom]))
    published = await results.publish_result(b"{}", message_id="x", destination="team.results.v1")
    assert published.subject == custom
    for bad in ("internal.>", "a.*.b", "a b", "", "a..b", "a.\r\nPUB x"):
        with pytest.raises(BusError) as rejected:
            await results.publish_result(b"{}", message_id="y", destination=bad)
        assert rejected.value.permanent


async def test_an_unreadable_command_is_dead_lettered_whole(
    admin: Client, source: NatsCommandSource, results: NatsResultPublisher
) -> None:
    garbage = b"\xff\xfe not a command\r\n"
    await publish_command(admin, garbage)
    [received] = await receive_until(source, 1)
    await results.publish_dead_letter(received, "not JSON")
    await results.publish_dead_letter(received, "not JSON")  # again after a crash: one record
    await received.term()
    [letter] = await stored(admin, "EGRESS", DLQ)
    record = json.loads(letter.data)
    assert record["type"] == "internal.egress.dlq.v1"
    assert record["reason"] == "not JSON"
    assert record["id"] == received.bus_id
    assert record["source"] == COMMANDS
    assert base64.b64decode(record["commandBase64"]) == garbage
    assert letter.headers is not None and letter.headers["Nats-Msg-Id"] == f"dlq:{received.bus_id}"


@pytest.mark.parametrize("lost", ["consumer", "stream"])
async def test_the_source_sets_up_again_what_disappeared(
    admin: Client, source: NatsCommandSource, lost: str
) -> None:
    if lost == "consumer":
        await admin.jetstream().delete_consumer("EGRESS", "ingress-egress")
    else:  # as after a server restart that lost its store
        await admin.jetstream().delete_stream("EGRESS")

    async def set_up_again() -> bool:
        assert await source.receive(1, timeout_s=0.2) == []
        try:
            await admin.jetstream().consumer_info("EGRESS", "ingress-egress")
        except NotFoundError:
            return False
        return True

    await eventually(set_up_again, 20, f"{lost} set up again")
    data = command()
    await publish_command(admin, data)
    [received] = await receive_until(source, 1)
    assert received.data == data
    assert source.describe()["errors"] >= 1
    await received.ack()


async def test_a_nats_server_restart_is_survived(
    nats_server: NatsServer, admin: Client, results: NatsResultPublisher
) -> None:
    await create_finalizer_stream(admin)
    source = NatsCommandSource(nats_server.url, prefix=PREFIX, ack_wait_s=1.0)
    await source.start()
    try:
        nats_server.kill()

        async def reports_the_outage() -> bool:
            assert await source.receive(1, timeout_s=0.2) == []
            return source.describe()["errors"] > 0 and not source.connected

        await eventually(reports_the_outage, 20, "outage reported")
        assert "NATS" in source.describe()["lastError"]
        with pytest.raises(BusError) as down:  # an outage, not a missing destination
            await results.publish_result(b"{}", message_id="r")
        assert not isinstance(down.value, DestinationMissing) and not down.value.permanent

        nats_server.start()  # same port, same store: the stream and consumer are still there
        data = command()
        await eventually(lambda: admin.is_connected, 20, "admin reconnected")
        await publish_command(admin, data)
        [received] = await receive_until(source, 1, attempts=30)
        assert received.data == data
        await received.ack()
        assert source.connected
        await eventually(lambda: results.connected, 20, "results reconnected")
        assert (await results.publish_result(b"{}", message_id="r")).subject == FINALIZER
    finally:
        await source.close()
