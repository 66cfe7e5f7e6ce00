"""Damage to a spool on disk costs at most the damaged block, and the loss is reported.

Each case writes 5,000 records in blocks of 50 over several segments (the bus down: nothing
acknowledged), closes the spool as a SIGKILL would leave it, damages the files, reopens and
replays. Every sequence number must then be either replayed intact or reported lost, and
what is lost must be no more than the damage forces.
"""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import pytest

from ingress_egress.spool import Spool
from ingress_egress.spool.journal import BLOCK_HEADER, CHECKPOINT_MAGIC, CHECKPOINT_SLOT

pytestmark = pytest.mark.timeout(60)

TOTAL = 5000
PER_BLOCK = 50


def record(i: int) -> bytes:
    return f'{{"id":"{i:08d}","text":"damage test {i}"}}'.encode()


async def written(directory: Path) -> list[Path]:
    spool = Spool(directory, 1 << 24, segment_bytes=64 << 10)
    spool.open()
    for i in range(TOTAL):
        assert spool.append(record(i)) == i
        if (i + 1) % PER_BLOCK == 0:
            await spool.flush()
    await spool.close()
    paths = segment_paths(directory)
    assert len(paths) >= 3
    return paths


def segment_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


async def replay(directory: Path) -> tuple[Spool, dict[int, bytes]]:
    spool = Spool(directory, 1 << 24, segment_bytes=64 << 10)
    spool.open()
    got: dict[int, bytes] = {}
    at = spool.low
    while at < spool.next_seq:
        records, at = await spool.read_from(at, 700)
        for seq, data in records:
            assert seq not in got
            got[seq] = data
    return spool, got


def lost_seqs(spool: Spool) -> set[int]:
    lost: set[int] = set()
    for start, end in spool.damage.lost_ranges:
        lost.update(range(start, end))
    assert len(lost) == spool.damage.lost_records  # the ranges are disjoint and all listed
    return lost


def check_accounted(spool: Spool, got: dict[int, bytes], *, at_most: int) -> set[int]:
    """Every record replayed intact or reported lost; no more lost than ``at_most``."""
    for seq, data in got.items():
        assert data == record(seq)
    lost = lost_seqs(spool)
    assert not lost & set(got)
    missing = set(range(TOTAL)) - set(got)
    assert missing == lost
    assert len(lost) <= at_most
    return lost


def block_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        body = struct.unpack_from("<I", data, offset + 24)[0]
        offset += BLOCK_HEADER.size + body
    return offsets


def flip(path: Path, at: int, mask: int = 0x5A) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= mask
    path.write_bytes(bytes(data))


async def test_an_intact_spool_replays_everything(tmp_path: Path) -> None:
    await written(tmp_path)
    spool, got = await replay(tmp_path)
    check_accounted(spool, got, at_most=0)
    assert spool.damage.damaged_regions == 0
    await spool.close()


@pytest.mark.parametrize("where", [1 / 3, 0.02, 0.5, 0.98])
async def test_a_flipped_byte_costs_only_its_block(
    tmp_path: Path, where: float, caplog: pytest.LogCaptureFixture
) -> None:
    paths = await written(tmp_path)
    middle = paths[1]
    flip(middle, int(middle.stat().st_size * where))
    caplog.set_level(logging.ERROR, "ingress_egress.spool")
    spool, got = await replay(tmp_path)
    lost = check_accounted(spool, got, at_most=PER_BLOCK)
    assert len(lost) == PER_BLOCK  # the one block, exactly, and reported as a range
    assert spool.damage.damaged_regions == 1
    assert f"records {min(lost)}" in caplog.text
    assert spool.describe()["damage"]["lostRecords"] == PER_BLOCK  # type: ignore[index]
    await spool.close()


@pytest.mark.parametrize("field", ["magic", "count", "first_seq", "body_length", "header_crc"])
async def test_header_damage_costs_only_its_block(tmp_path: Path, field: str) -> None:
    paths = await written(tmp_path)
    segment = paths[1]
    offsets = block_offsets(segment)
    at = (
        offsets[len(offsets) // 2]
        + {
            "magic": 1,
            "count": 4,
            "first_seq": 8,
            "body_length": 24,
            "header_crc": 32,
        }[field]
    )
    flip(segment, at, 0x01)  # one bit
    spool, got = await replay(tmp_path)
    lost = check_accounted(spool, got, at_most=PER_BLOCK)
    assert len(lost) == PER_BLOCK
    await spool.close()


async def test_damage_in_the_first_block_of_a_segment(tmp_path: Path) -> None:
    paths = await written(tmp_path)
    flip(paths[1], BLOCK_HEADER.size + 30)
    flip(paths[2], 10)  # and a header in the next segment
    spool, got = await replay(tmp_path)
    lost = check_accounted(spool, got, at_most=2 * PER_BLOCK)
    assert len(lost) == 2 * PER_BLOCK
    await spool.close()


async def test_valid_data_after_damage_in_the_last_segment_is_kept_on_disk(
    tmp_path: Path,
) -> None:
    paths = await written(tmp_path)
    last = paths[-1]
    size = last.stat().st_size
    flip(last, block_offsets(last)[1] + 40)
    spool, got = await replay(tmp_path)
    check_accounted(spool, got, at_most=PER_BLOCK)
    assert last.stat().st_size == size  # nothing truncated
    assert spool.append(record(TOTAL)) == TOTAL  # numbering continues after the last record
    await spool.close()
    # The damaged block is reported again next time, and the new record is there too.
    spool, got = await replay(tmp_path)
    assert got[TOTAL] == record(TOTAL)
    assert spool.damage.lost_records == PER_BLOCK
    await spool.close()


async def test_a_torn_tail_costs_the_block_being_written(tmp_path: Path) -> None:
    paths = await written(tmp_path)
    last = paths[-1]
    offsets = block_offsets(last)
    with last.open("r+b") as handle:
        handle.truncate(offsets[-1] + BLOCK_HEADER.size + 100)  # the last block half written
    spool, got = await replay(tmp_path)
    lost = check_accounted(spool, got, at_most=PER_BLOCK)
    # Its header survived: the torn block's range is reported exactly.
    assert lost == set(range(TOTAL - PER_BLOCK, TOTAL))
    await spool.close()


async def test_a_truncated_middle_segment_reports_exactly_what_was_cut(tmp_path: Path) -> None:
    paths = await written(tmp_path)
    middle = paths[1]
    offsets = block_offsets(middle)
    with middle.open("r+b") as handle:
        handle.truncate(offsets[3] + 7)  # blocks 0-2 stay whole, the rest is gone
    spool, got = await replay(tmp_path)
    first = int(middle.stem)
    cut = set(range(first + 3 * PER_BLOCK, int(paths[2].stem)))
    lost = check_accounted(spool, got, at_most=len(cut))
    assert lost == cut
    await spool.close()


async def test_a_deleted_middle_segment_is_reported_as_a_range(tmp_path: Path) -> None:
    paths = await written(tmp_path)
    paths[1].unlink()
    spool, got = await replay(tmp_path)
    gone = set(range(int(paths[1].stem), int(paths[2].stem)))
    lost = check_accounted(spool, got, at_most=len(gone))
    assert lost == gone
    assert list(spool.damage.lost_ranges) == [(min(gone), max(gone) + 1)]
    await spool.close()


async def test_a_deleted_first_segment_is_reported_too(tmp_path: Path) -> None:
    paths = await written(tmp_path)
    paths[0].unlink()
    spool, got = await replay(tmp_path)
    lost = check_accounted(spool, got, at_most=int(paths[1].stem))
    assert lost == set(range(int(paths[1].stem)))
    await spool.close()


def forge_checkpoint(directory: Path, low: int, generation: int = 99) -> None:
    fields = CHECKPOINT_SLOT.pack(CHECKPOINT_MAGIC, generation, low, 0)[:-4]
    slot = fields + struct.pack("<I", zlib.crc32(fields))
    (directory / "checkpoint").write_bytes(slot + slot)


async def test_a_checkpoint_set_far_ahead_is_not_trusted(tmp_path: Path) -> None:
    await written(tmp_path)
    forge_checkpoint(tmp_path, 10**12)  # a valid CRC, an impossible mark
    spool, got = await replay(tmp_path)
    check_accounted(spool, got, at_most=0)
    assert "past the last record" in spool.damage.checkpoint_ignored
    await spool.close()


async def test_a_damaged_checkpoint_replays_everything(tmp_path: Path) -> None:
    await written(tmp_path)
    raw = bytearray((tmp_path / "checkpoint").read_bytes() or bytes(48))
    raw[:] = bytes(b ^ 0xFF for b in raw)
    (tmp_path / "checkpoint").write_bytes(bytes(raw))
    spool, got = await replay(tmp_path)
    check_accounted(spool, got, at_most=0)
    await spool.close()


async def test_a_valid_checkpoint_still_limits_the_replay(tmp_path: Path) -> None:
    await written(tmp_path)
    forge_checkpoint(tmp_path, 1234)
    spool, got = await replay(tmp_path)
    assert sorted(got) == list(range(1234, TOTAL))
    assert spool.damage.lost_records == 0
    await spool.close()


async def test_damage_found_while_reading_back_is_reported_and_skipped(tmp_path: Path) -> None:
    paths = await written(tmp_path)
    spool = Spool(tmp_path, 1 << 24, segment_bytes=64 << 10)
    spool.open()
    flip(paths[0], BLOCK_HEADER.size + 5)  # after open's scan: bit rot while running
    got: dict[int, bytes] = {}
    at = 0
    while at < spool.next_seq:
        records, at = await spool.read_from(at, 30)  # reads smaller than a block
        got.update(records)
    lost = check_accounted(spool, got, at_most=PER_BLOCK)
    assert lost == set(range(PER_BLOCK))
    await spool.close()
