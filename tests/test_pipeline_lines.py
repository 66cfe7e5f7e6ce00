"""A codec's ``decode`` (a whole read in one call, the IRC client's hot path) produces exactly
the envelopes that converting each line on its own produces, in the same order, hands the
non-chat lines back typed and the bad ones as errors; the pipeline accepts them as they are."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from ingress_egress.bus.base import SendResult
from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.envelope.outbound import message_to_outbound
from ingress_egress.pipeline import Pipeline
from ingress_egress.pipeline.pipeline import SEND_SLICE
from ingress_egress.protocol import IrcParseError, parse_line
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import IrcCodec, PythonCodec, make_codec
from ingress_egress.spool import Spool
from ingress_egress.status import Counters, ErrorLog
from ingress_egress.twitch.messages import Privmsg, from_irc
from tests.support.waiting import eventually

VECTORS = Path(__file__).parent / "fixtures" / "twitch_irc_vectors.jsonl"
MALFORMED = ["", "@tags-without-a-command", ":prefix-only"]


def corpus() -> list[str]:
    lines = [json.loads(row)["raw"] for row in VECTORS.read_text(encoding="utf-8").splitlines()]
    generator = TrafficGenerator(seed=7)
    lines += [generator.privmsg(f"chan{i % 3}")[0] for i in range(50)]
    return lines + MALFORMED


def pipeline() -> Pipeline:
    return Pipeline(MemoryPublisher(), Counters(), ErrorLog())


def accept_read(pipe: Pipeline, codec: IrcCodec, lines: list[str]) -> None:
    decoded = codec.decode(lines, time.time())
    pipe.accept_many(decoded.envelopes, chat_only=decoded.chat_only)


def comparable(data: bytes) -> dict[str, object]:
    envelope = orjson.loads(data)
    random_parts = ["traceId", "timestamp"]  # drawn / read per call
    if not envelope["payload"].get("messageId"):  # no Twitch id: the ids are random too
        random_parts += ["id", "correlationId"]
    for part in random_parts:
        envelope.pop(part)
    return envelope


def codec(kind: str) -> IrcCodec:
    """The codec make_codec chooses (native when the extension is built), or the Python one."""
    return make_codec(EnvelopeBuilder()) if kind == "chosen" else PythonCodec(EnvelopeBuilder())


@pytest.mark.parametrize("kind", ["chosen", "python"])
def test_a_decoded_read_holds_what_line_by_line_conversion_makes(kind: str) -> None:
    lines = corpus()
    builder, span_ids = EnvelopeBuilder(), RandomIds()
    one_by_one = []
    for line in lines:
        try:
            typed = from_irc(parse_line(line))
        except IrcParseError:
            continue
        outbound = message_to_outbound(builder, typed, 1_700_000_000.0, span_ids, 0.0)
        if outbound is not None:
            one_by_one.append(outbound)
    decoded = codec(kind).decode(lines, 1_700_000_000.0)
    # The same envelopes in the same order: events are converted in line order.
    assert [comparable(m.data) for m in decoded.envelopes] == [
        comparable(m.data) for m in one_by_one
    ]
    assert not decoded.chat_only and len(decoded.envelopes) > 50
    assert set(MALFORMED) <= {line for line, _ in decoded.errors}
    for line, error in decoded.errors:  # each is a line the parser refuses
        assert isinstance(error, IrcParseError)
        with pytest.raises(IrcParseError):
            parse_line(line)
    handed_back = [message for _, message in decoded.control]
    assert not any(isinstance(message, Privmsg) for message in handed_back)
    assert {type(m).__name__ for m in handed_back} >= {"Roomstate", "Usernotice", "Clearchat"}
    for line, message in decoded.control:
        assert type(message) is type(from_irc(parse_line(line)))

    pipe = pipeline()
    pipe.accept_many(decoded.envelopes)
    assert pipe.counters.received == len(decoded.envelopes)
    by_type = pipe.envelopes_by_type()
    assert sum(by_type.values()) == len(decoded.envelopes) and len(by_type) >= 3


def test_a_read_of_chat_only_is_one_run_counted_as_chat() -> None:
    generator = TrafficGenerator(seed=11)
    lines = [generator.privmsg("chan")[0] for _ in range(20)]
    decoded = codec("chosen").decode(lines, time.time())
    assert decoded.chat_only and not decoded.control and not decoded.errors
    assert [orjson.loads(m.data)["payload"]["messageId"] for m in decoded.envelopes] == [
        parse_line(line).tags["id"] for line in lines
    ]
    pipe = pipeline()
    pipe.accept_many(decoded.envelopes, chat_only=True)
    assert pipe.envelopes_by_type() == {"external.chat.message.v1": 20}


class _GatedMemory(MemoryPublisher):
    """The memory bus, but the first slice's ack comes only once the second slice is inside
    ``send_many``, which then waits for a gate: an ack settling while a slice is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.first_ack: asyncio.Future[None] | None = None
        self.gate = asyncio.Event()
        self.inside = asyncio.Event()

    async def send_many(self, messages: Sequence[OutboundMessage]) -> SendResult:
        self.calls += 1
        if self.calls == 1:
            await super().send_many(messages)
            self.first_ack = asyncio.get_running_loop().create_future()
            return [(self.first_ack, len(messages))], None
        if self.calls == 2:
            assert self.first_ack is not None
            self.first_ack.set_result(None)
            self.inside.set()
            await self.gate.wait()
        return await super().send_many(messages)


async def test_a_slice_being_sent_keeps_the_spool_frontier_behind_it(tmp_path: Path) -> None:
    """While a slice is inside ``send_many`` it has no ack: the spool must keep it even when
    the acks of earlier slices settle meanwhile, and nothing is published twice or lost."""
    spool = Spool(tmp_path / "spool", 1 << 24)
    publisher = _GatedMemory()
    line_source = TrafficGenerator(seed=3)
    pipe = Pipeline(publisher, Counters(), ErrorLog(), spool=spool, max_in_flight=10_000)
    await pipe.prepare()
    await publisher.start()
    first = [line_source.privmsg("chan")[0] for _ in range(SEND_SLICE)]
    second = [line_source.privmsg("chan")[0] for _ in range(10)]
    accept_read(pipe, codec("chosen"), first + second)
    pipe.start()
    await asyncio.wait_for(publisher.inside.wait(), 10)
    # The first slice's ack settles meanwhile (the spool frontier moves in the same step).
    await eventually(lambda: pipe.counters.published == SEND_SLICE, 10, "the first ack")
    assert pipe.counters.published == SEND_SLICE
    assert spool.low == SEND_SLICE  # the frontier stops at the slice being sent
    assert spool.count == 10
    publisher.gate.set()
    await eventually(lambda: pipe.counters.published == SEND_SLICE + 10, 10, "the second ack")
    assert publisher.count == SEND_SLICE + 10 and spool.count == 0
    await pipe.stop()


@pytest.mark.parametrize("spool_bytes", [4 << 20, 1 << 26], ids=["disk", "memory"])
async def test_a_spilled_burst_comes_back_in_order_from_memory_or_disk(
    tmp_path: Path, spool_bytes: int
) -> None:
    """A burst far past the window spills; what the in-memory share of the spool holds is
    read back from memory, the rest from disk (a 4 MiB spool keeps 256 KiB, ~170 envelopes,
    in memory), and either way every envelope is published once, in order."""
    spool = Spool(tmp_path / "spool", spool_bytes)
    publisher = MemoryPublisher()
    counters = Counters()
    pipe = Pipeline(publisher, counters, ErrorLog(), spool=spool, queue_max=64)
    read_codec = codec("chosen")
    await pipe.prepare()
    line_source = TrafficGenerator(seed=5)
    lines = [line_source.privmsg(f"chan{i % 3}")[0] for i in range(1500)]
    for start in range(0, len(lines), 100):  # reads of 100 lines while the sender is stopped
        accept_read(pipe, read_codec, lines[start : start + 100])
        await spool.flush()
    assert counters.spilled == 1500 - 64
    assert pipe.overflow is not None
    kept = pipe.overflow.kept_in_memory
    assert (kept < 300) if spool_bytes == 4 << 20 else (kept == counters.spilled)
    await publisher.start()
    pipe.start()
    await eventually(lambda: counters.published == 1500, 10, "everything published")
    sent = [orjson.loads(m.data)["payload"]["messageId"] for m in publisher.messages]
    expected = [parse_line(line).tags["id"] for line in lines]
    assert sent == expected
    assert counters.replayed == counters.spilled and spool.count == 0
    await pipe.stop()
