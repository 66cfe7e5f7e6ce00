"""Spill and read-back on their own (``Overflow``), on a real spool: order, memory share,
counters, a previous run's rest, an unusable spool."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import orjson

from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.pipeline.overflow import READ_BACK_MAX, Overflow
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import PythonCodec
from ingress_egress.spool import Spool
from ingress_egress.status import Counters, ErrorLog


def envelopes(count: int, seed: int = 11) -> list[OutboundMessage]:
    generator = TrafficGenerator(seed=seed)
    lines = [generator.privmsg(f"chan{i % 3}")[0] for i in range(count)]
    decoded = PythonCodec(EnvelopeBuilder()).decode(lines, time.time())
    assert len(decoded.envelopes) == count
    return list(decoded.envelopes)


def message_ids(messages: list[OutboundMessage] | deque[OutboundMessage]) -> list[str]:
    return [orjson.loads(m.data)["payload"]["messageId"] for m in messages]


async def opened(path: Path, max_bytes: int) -> tuple[Overflow, Counters, ErrorLog]:
    counters, errors = Counters(), ErrorLog()
    overflow = Overflow(Spool(path, max_bytes), counters, errors)
    assert await overflow.open()
    return overflow, counters, errors


async def read_all_back(overflow: Overflow, room: int) -> deque[OutboundMessage]:
    window: deque[OutboundMessage] = deque()
    rounds = 0
    while overflow.next_read >= 0:
        await overflow.read_back(window, room)
        rounds += 1
        assert rounds < 1000, "read-back makes no progress"
    return window


async def test_a_spill_comes_back_in_order_first_from_memory_then_from_disk(
    tmp_path: Path,
) -> None:
    # 1 MiB spool: 64 KiB kept in memory, a few dozen envelopes; the rest from disk.
    overflow, counters, _ = await opened(tmp_path / "spool", 1 << 20)
    spilled = envelopes(600)
    first, *rest = spilled
    first.seq = overflow.spool.append(first.data)
    overflow.spill_one(first)  # the window is full: the spill starts here
    assert overflow.next_read == first.seq == 0
    for start in range(0, len(rest), 100):
        assert overflow.spill_run(rest[start : start + 100])
    await overflow.spool.flush()
    assert counters.spilled == 600 and overflow.waiting == 600
    kept = overflow.kept_in_memory
    assert 0 < kept < 600

    window = await read_all_back(overflow, room=READ_BACK_MAX)
    assert [m.seq for m in window] == list(range(600))
    assert message_ids(window) == message_ids(spilled)
    assert window[0] is first and window[kept - 1] is spilled[kept - 1]  # memory: as accepted
    assert window[kept] is not spilled[kept]  # disk: parsed again
    assert counters.replayed == 600 and overflow.waiting == 0 and overflow.kept_in_memory == 0


async def test_a_small_window_takes_the_spill_back_in_slices(tmp_path: Path) -> None:
    overflow, counters, _ = await opened(tmp_path / "spool", 1 << 26)  # all in memory
    spilled = envelopes(50)
    spilled[0].seq = overflow.spool.append(spilled[0].data)
    overflow.spill_one(spilled[0])
    assert overflow.spill_run(spilled[1:])
    window: deque[OutboundMessage] = deque()
    await overflow.read_back(window, room=16)
    assert len(window) == 16 and overflow.next_read == 16 and overflow.waiting == 34
    window.clear()
    window.extend(await read_all_back(overflow, room=16))
    assert [m.seq for m in window] == list(range(16, 50))
    assert counters.replayed == 50


async def test_a_gap_in_sequence_sends_the_rest_to_disk_read_back(tmp_path: Path) -> None:
    """Only consecutive spilled envelopes are kept in memory: after one that went to the
    window instead, the spill is read back from disk, still in order."""
    overflow, _, _ = await opened(tmp_path / "spool", 1 << 26)
    messages = envelopes(10)
    spool = overflow.spool
    messages[0].seq = spool.append(messages[0].data)
    overflow.spill_one(messages[0])
    messages[1].seq = spool.append(messages[1].data)  # (taken by the window in between)
    for message in messages[2:]:
        message.seq = spool.append(message.data)
        overflow.spill_one(message)
    await spool.flush()
    assert overflow.kept_in_memory == 1
    window = await read_all_back(overflow, room=READ_BACK_MAX)
    assert [m.seq for m in window] == list(range(10))  # the spool holds 1 as well
    assert message_ids(window) == message_ids(messages)


async def test_what_a_previous_run_left_is_read_back_first(tmp_path: Path) -> None:
    path = tmp_path / "spool"
    earlier = Spool(path, 1 << 20)
    earlier.open()
    left = envelopes(20, seed=3)
    earlier.append_many([m.data for m in left])
    earlier.ack_below(5)
    await earlier.close()

    overflow, counters, _ = await opened(path, 1 << 20)
    assert overflow.next_read == 5 and overflow.waiting == 15
    window = await read_all_back(overflow, room=READ_BACK_MAX)
    assert message_ids(window) == message_ids(left[5:])
    assert counters.replayed == 15 and counters.spilled == 0


async def test_an_unusable_spool_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    counters, errors = Counters(), ErrorLog()
    overflow = Overflow(Spool(blocker, 1 << 20), counters, errors)
    assert not await overflow.open()
    assert errors.last is not None and errors.last["code"] == "spool_unavailable"
    assert overflow.next_read == -1
