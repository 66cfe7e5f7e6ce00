"""The spool's journal on a real directory: replay order, checkpoint, torn tail, CRC, cap,
segment deletion, locking, and records read back before they were ever written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ingress_egress.spool import Spool, SpoolError
from ingress_egress.spool.journal import BLOCK_HEADER

pytestmark = pytest.mark.timeout(60)


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def record(i: int) -> bytes:
    return f'{{"id":"{i:08d}","text":"héllo {i}"}}'.encode()


async def opened(directory: Path, **kwargs: object) -> Spool:
    spool = Spool(directory, kwargs.pop("max_bytes", 1 << 20), **kwargs)  # type: ignore[arg-type]
    spool.open()
    return spool


async def fill(spool: Spool, n: int, per_flush: int = 10, start: int = 0) -> None:
    for i in range(start, start + n):
        assert spool.append(record(i)) == i
        if (i + 1) % per_flush == 0:
            await spool.flush()
    await spool.flush()


async def test_records_come_back_in_order_after_a_restart(tmp_path: Path) -> None:
    spool = await opened(tmp_path)
    await fill(spool, 100)
    await spool.close()
    again = await opened(tmp_path)
    assert (again.low, again.next_seq, again.count) == (0, 100, 100)
    got = await again.read(0, 1000)
    assert got == [(i, record(i)) for i in range(100)]
    assert again.append(record(100)) == 100  # numbering continues
    await again.close()


async def test_the_checkpoint_limits_the_replay_to_what_was_not_acknowledged(
    tmp_path: Path,
) -> None:
    spool = await opened(tmp_path)
    await fill(spool, 100)
    spool.ack_below(60)
    await spool.close()
    again = await opened(tmp_path)
    assert (again.low, again.count) == (60, 40)
    assert [seq for seq, _ in await again.read(again.low, 1000)] == list(range(60, 100))
    await again.close()


async def test_a_torn_tail_is_ignored_counted_and_left_alone(tmp_path: Path) -> None:
    spool = await opened(tmp_path)
    await fill(spool, 30)
    await spool.close()
    (segment,) = segments(tmp_path)
    # A crash mid-write: the first half of the next block's header, nothing more.
    with segment.open("ab") as handle:
        handle.write(b"IEJ2" + b"x" * 10)
    torn = segment.stat().st_size
    again = await opened(tmp_path)
    assert again.torn_blocks == 1 and again.damage.tail_bytes == 14
    assert again.damage.lost_records == 0  # nothing numbered was in it
    assert segment.stat().st_size == torn  # not truncated: new blocks go to a new segment
    assert [seq for seq, _ in await again.read(0, 1000)] == list(range(30))
    await fill(again, 5, start=30)
    await again.close()
    assert len(segments(tmp_path)) == 2
    third = await opened(tmp_path)
    assert [seq for seq, _ in await third.read(0, 1000)] == list(range(35))
    await third.close()


async def test_a_block_failing_its_crc_is_skipped_and_counted(tmp_path: Path) -> None:
    spool = await opened(tmp_path)
    await fill(spool, 30, per_flush=10)  # three blocks of ten
    await spool.close()
    (segment,) = segments(tmp_path)
    data = bytearray(segment.read_bytes())
    block_size = len(data) // 3
    data[block_size + BLOCK_HEADER.size + 60] ^= 0xFF  # a byte inside the second block
    segment.write_bytes(bytes(data))
    again = await opened(tmp_path)
    assert again.torn_blocks == 1
    # Only the damaged block is lost: the scan resynchronises on the third.
    assert [seq for seq, _ in await again.read(0, 1000)] == [*range(10), *range(20, 30)]
    assert list(again.damage.lost_ranges) == [(10, 20)]
    await again.close()


async def test_the_cap_refuses_and_acks_make_room(tmp_path: Path) -> None:
    spool = await opened(tmp_path, max_bytes=65536, segment_bytes=8192)
    size = len(record(0)) + 4
    accepted = 0
    while spool.append(record(accepted)) >= 0:
        accepted += 1
        if accepted % 50 == 0:
            await spool.flush()
    assert 65536 // (size + 8) < accepted <= 65536 // size
    assert spool.held_bytes <= 65536
    assert spool.append(record(0)) == -1  # still full
    await spool.flush()
    spool.ack_below(accepted)
    await spool.flush()  # acknowledged segments are deleted: room again
    assert spool.append(record(accepted)) == accepted
    await spool.close()


async def test_fully_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    spool = await opened(tmp_path, segment_bytes=1024)
    await fill(spool, 400, per_flush=20)
    before = segments(tmp_path)
    assert len(before) > 5
    spool.ack_below(200)
    await spool.flush()
    left = segments(tmp_path)
    assert len(left) < len(before)
    assert all(p in before for p in left)
    assert int(left[0].stem) <= 200  # the segment holding record 200 stays
    spool.ack_below(400)
    await spool.flush()
    assert segments(tmp_path) == []  # all acknowledged: even the one in use goes
    assert spool.count == 0
    assert spool.oldest_age_s() is None
    await spool.close()
    again = await opened(tmp_path)
    assert again.count == 0 and again.next_seq == 400
    await again.close()


async def test_records_not_yet_written_are_read_from_memory(tmp_path: Path) -> None:
    spool = await opened(tmp_path)
    await fill(spool, 10)
    for i in range(10, 15):
        spool.append(record(i))
    got = await spool.read(8, 100)
    assert got == [(i, record(i)) for i in range(8, 15)]
    assert spool.oldest_age_s() is not None
    await spool.close()


async def test_one_writer_per_directory(tmp_path: Path) -> None:
    spool = await opened(tmp_path)
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path, 1 << 20).open()
    await spool.close()
    released = await opened(tmp_path)  # close released the lock
    await released.close()


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(SpoolError, match="a-file"):
        Spool(blocker / "spool", 1 << 20).open()


async def test_a_flush_cancelled_mid_write_still_accounts_for_it(tmp_path: Path) -> None:
    """Shutdown cancels the flusher: the write in progress completes and is recorded, so the
    final flush numbers the next block correctly."""
    spool = await opened(tmp_path)
    for i in range(500):
        spool.append(record(i))
    task = asyncio.ensure_future(spool.flush())
    await asyncio.sleep(0)  # the write has started in its thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for i in range(500, 510):
        spool.append(record(i))
    await spool.close()
    again = await opened(tmp_path)
    assert await again.read(0, 1000) == [(i, record(i)) for i in range(510)]
    assert again.torn_blocks == 0
    await again.close()


async def test_append_many_is_append_one_after_another(tmp_path: Path) -> None:
    one, many = await opened(tmp_path / "one"), await opened(tmp_path / "many")
    firsts = []
    for start in (0, 7, 14):
        stop = start + (7 if start < 14 else 5)
        for i in range(start, stop):
            one.append(record(i))
        firsts.append(many.append_many([record(i) for i in range(start, stop)]))
        if start == 7:
            await one.flush()
            await many.flush()
    assert firsts == [0, 7, 14] and many.next_seq == one.next_seq == 19
    assert many.append_many([]) == 19  # nothing taken, nothing moved
    assert many.held_bytes == one.held_bytes
    assert await many.read(0, 100) == await one.read(0, 100)
    await one.close()
    await many.close()
    reopened = await opened(tmp_path / "many")
    assert await reopened.read(0, 100) == [(i, record(i)) for i in range(19)]
    await reopened.close()


async def test_append_many_takes_all_or_nothing_at_the_cap(tmp_path: Path) -> None:
    spool = await opened(tmp_path, max_bytes=4096)
    size = len(record(0)) + 4
    fits = (4096 - 64) // size
    assert spool.append_many([record(i) for i in range(fits + 50)]) == -1
    assert spool.next_seq == 0 and spool.held_bytes == 0  # refused whole
    assert spool.append_many([record(i) for i in range(fits // 2)]) == 0
    assert spool.next_seq == fits // 2
    await spool.close()
