"""NATS JetStream specifics: stream creation, server-side de-duplication, clear errors."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import nats
import pytest
from nats.js.api import StreamConfig

from ingress_egress.bus.base import BusError
from ingress_egress.bus.nats import DUPLICATE_WINDOW_S, NatsPublisher, hpub_frame
from tests.support.buses import outbound
from tests.support.nats import NatsHarness, NatsServer
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(60)
SUBJECT = "dev.internal.ingress.v1"


async def test_creates_the_stream_with_a_dedup_window(nats_server: NatsServer) -> None:
    publisher = NatsPublisher(nats_server.url, SUBJECT, "ING", extra_subjects=("dev.dlq",))
    await publisher.start()
    await publisher.close()
    nc = await nats.connect(nats_server.url)
    info = await nc.jetstream().stream_info("ING")
    await nc.close()
    assert set(info.config.subjects) == {SUBJECT, "dev.dlq"}
    assert info.config.duplicate_window == pytest.approx(DUPLICATE_WINDOW_S)


async def test_same_message_id_is_stored_once(nats_server: NatsServer) -> None:
    publisher = NatsPublisher(nats_server.url, SUBJECT, "ING", ack_mode="each")
    await publisher.start()
    message = outbound("alpha", 1)
    first = await (await publisher.send(message))
    second = await (await publisher.send(message))  # a retry / a duplicate connection
    await publisher.close()
    assert not first.duplicate
    assert second.duplicate
    assert first.seq == second.seq
    got = await NatsHarness(nats_server.url, "ING", SUBJECT).received(1)
    assert len(got) == 1


async def test_batch_acks_confirm_every_message_and_dedupe_repeats(
    nats_server: NatsServer,
) -> None:
    publisher = NatsPublisher(nats_server.url, SUBJECT, "ING", ack_batch=10, ack_linger_s=0.01)
    await publisher.start()
    messages = [outbound("alpha", i) for i in range(25)]
    futures = [await publisher.send(m) for m in messages]
    futures += [await publisher.send(m) for m in messages[:5]]  # repeats, as retries send
    acks = await asyncio.gather(*futures)
    await publisher.close()
    # 25 + 5 messages -> batches of 10, 10, 10: every future settled by its batch's barrier.
    assert len({id(ack) for ack in acks}) == 3
    assert all(ack.stream == "ING" for ack in acks)
    got = await NatsHarness(nats_server.url, "ING", SUBJECT).received(25)
    assert len(got) == 25


async def test_existing_stream_gains_the_subject(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(StreamConfig(name="ING", subjects=["other.subject"]))
    publisher = NatsPublisher(nats_server.url, SUBJECT, "ING")
    await publisher.start()
    await publisher.close()
    info = await nc.jetstream().stream_info("ING")
    await nc.close()
    assert set(info.config.subjects) == {"other.subject", SUBJECT}


async def test_unreachable_server_is_a_clear_error_without_credentials() -> None:
    url = f"nats://user:hunter2pass@127.0.0.1:{free_port()}"
    publisher = NatsPublisher(url, SUBJECT, "ING", connect_timeout_s=0.5)
    with pytest.raises(BusError) as caught:
        await publisher.start()
    assert "cannot connect to NATS at nats://127.0.0.1:" in str(caught.value)
    assert "hunter2pass" not in str(caught.value)


async def test_subject_owned_by_another_stream_is_a_clear_error(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    await nc.jetstream().add_stream(StreamConfig(name="OTHER", subjects=[SUBJECT]))
    await nc.close()
    publisher = NatsPublisher(nats_server.url, SUBJECT, "ING")
    with pytest.raises(BusError) as caught:
        await publisher.start()
    await publisher.close()
    assert str(caught.value).startswith("JetStream stream ING: ")
    assert "overlap" in str(caught.value)


@pytest.mark.parametrize(
    ("dedup_id", "text"),
    [("plain-id-1", "hello"), (" padded\r\nid ", "tëxt 🎉 with\r\nnewlines"), ("", "")],
)
async def test_pre_encoded_frames_equal_what_nats_py_sends(
    nats_server: NatsServer, dedup_id: str, text: str
) -> None:
    """The batch mode builds HPUB frames itself (for speed): byte for byte what nats-py
    would send for the same publish, so the server sees no difference."""
    message = replace(outbound("alpha", 3), dedup_id=dedup_id or "x", data=text.encode())
    nc = await nats.connect(nats_server.url)
    sent: list[bytes] = []
    original = nc._send_command

    async def capture(cmd: bytes, priority: bool = False) -> None:
        sent.append(bytes(cmd))
        await original(cmd, priority)

    nc._send_command = capture  # type: ignore[method-assign]
    headers = {
        "Nats-Msg-Id": message.dedup_id,
        "traceparent": message.traceparent,
        "Envelope-Type": message.type,
    }
    await nc.publish(SUBJECT, message.data, headers=headers)
    await nc.close()
    assert sent == [hpub_frame(SUBJECT.encode(), message)]


async def test_oversize_envelope_is_a_permanent_error(nats_server: NatsServer) -> None:
    publisher = NatsPublisher(nats_server.url, SUBJECT, "ING")
    await publisher.start()
    huge = replace(outbound("alpha", 9), data=b"x" * (2 * 1024 * 1024))
    with pytest.raises(BusError) as caught:
        await publisher.send(huge)
    await publisher.close()
    assert caught.value.permanent
