"""A write-ahead journal of encoded envelopes in local segment files.

Every accepted envelope is appended here before it is sent, so the journal holds what the
bus has not acknowledged yet; on start, those records are read back first, in order.

* ``append`` (on the event loop, per message) only adds the bytes to an in-memory list:
  the cheap part of the hot path.
* ``flush`` (every ``SPOOL_FSYNC_MS``, in a worker thread) first persists the low-water mark,
  deletes segments holding only acknowledged records, drops from memory the records the bus
  acknowledged meanwhile (they never need the disk), then writes the rest as one *block* and
  fsyncs it. A block is a header (magic, record count, first sequence number, write time,
  body length, CRC-32 of the body, CRC-32 of the header itself), a table of record lengths,
  then the records.
* ``ack_below`` moves the low-water mark. It is persisted in a ``checkpoint`` file of two
  fixed slots written alternately in place (generation, mark, CRC): an update needs no new
  disk space, so a full disk can still record acknowledgements and free segments.

Damage is contained to the damaged block: a block failing either CRC is skipped and the scan
resynchronises on the next valid header; sequence numbers missing between valid blocks (a
damaged header, a deleted segment, a truncated file) are reported as lost ranges. Nothing is
truncated or rewritten on open: new blocks always go to a new segment.

Records are numbered by sequence (0, 1, 2, ... over the journal's life): the numbering
survives restarts, so "everything from the checkpoint on" is the replay. A ``destination``
file names where the records were accepted for; a spool found with another one is moved
aside (``foreign-*``) and reported, never replayed into this destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("ingress_egress.spool")

MAGIC = b"IEJ2"
# magic, count, first seq, written at ms, body length, body crc; then the crc of those 32 bytes
_HEADER_FIELDS = struct.Struct("<4sIQQII")
BLOCK_HEADER = struct.Struct("<4sIQQIII")
CHECKPOINT_MAGIC = b"IEC2"
CHECKPOINT_SLOT = struct.Struct("<4sQQI")  # magic, generation, low-water mark, crc of the rest
SEGMENT_SUFFIX = ".seg"
DESTINATION_FILE = "destination.json"
LOST_RANGES_KEPT = 50  # ranges listed in /_debug/twitch; the count covers them all


class SpoolError(Exception):
    """The spool directory cannot be used (not writable, locked by another process...)."""


@dataclass(slots=True)
class _Block:
    first_seq: int
    count: int
    segment: Path
    offset: int  # of the header
    size: int  # header + body
    written_at: float  # wall clock, seconds

    @property
    def end_seq(self) -> int:
        return self.first_seq + self.count


@dataclass(slots=True)
class _Segment:
    first_seq: int
    path: Path
    size: int
    end_seq: int  # one past its last record


@dataclass
class Damage:
    """What open and read-back found unreadable, and what it cost."""

    lost_records: int = 0  # sequence numbers known to be lost
    lost_ranges: deque[tuple[int, int]] = field(
        default_factory=lambda: deque(maxlen=LOST_RANGES_KEPT)
    )
    damaged_regions: int = 0  # unreadable byte ranges skipped
    unreadable_bytes: int = 0
    tail_bytes: int = 0  # unreadable bytes after a segment's last valid block (count unknown)
    checkpoint_ignored: str = ""  # why the checkpoint was not trusted, if it was not
    damaged_end: int = 0  # one past the last record of a damaged block with a valid header

    def lose(self, start: int, end: int) -> None:
        if end > start:
            self.lost_records += end - start
            self.lost_ranges.append((start, end))

    def describe(self) -> dict[str, Any]:
        return {
            "lostRecords": self.lost_records,
            "lostRanges": [list(r) for r in self.lost_ranges],
            "damagedRegions": self.damaged_regions,
            "unreadableBytes": self.unreadable_bytes,
            "tornTailBytes": self.tail_bytes,
            "checkpointIgnored": self.checkpoint_ignored,
        }


class Spool:
    """One directory, one writer (an exclusive ``flock`` on ``lock`` enforces it)."""

    def __init__(
        self,
        directory: Path | str,
        max_bytes: int,
        fsync_interval_s: float = 0.05,
        segment_bytes: int | None = None,
        destination: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.fsync_interval_s = fsync_interval_s
        self.segment_bytes = segment_bytes or max(4096, min(16 << 20, max_bytes // 8))
        self.destination = destination
        self.next_seq = 0  # sequence of the next appended record
        self.low = 0  # every record below this is acknowledged
        self.damage = Damage()
        self.corrupt_reads = 0  # blocks that failed their CRC when read back
        self.write_errors = 0
        self.last_error = ""
        self.healthy = True  # False while writes fail (records then wait in memory)
        self.kept_aside: list[dict[str, Any]] = []  # spools written for another destination
        self._pending: list[bytes] = []
        self._pending_first = 0
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._disk_bytes = 0
        self._writing_bytes = 0  # a block being written by the worker thread
        self._segments: deque[_Segment] = deque()
        self._blocks: deque[_Block] = deque()  # on disk, not yet wholly acknowledged
        self._file: IO[bytes] | None = None
        self._checkpoint_fd: int | None = None
        self._generation = 0
        self._lock_fd: int | None = None
        self._saved_low = -1
        self._last_read: tuple[_Block, list[bytes]] | None = None
        self._reported: set[tuple[Path, int]] = set()  # damaged blocks met reading back
        self._io = asyncio.Lock()
        self._opened = False

    # -- figures --------------------------------------------------------------------

    @property
    def held_bytes(self) -> int:
        """What the spool holds: live segments on disk plus records not yet written."""
        return self._disk_bytes + self._writing_bytes + self._pending_bytes

    @property
    def count(self) -> int:
        """Records not yet acknowledged (including those also held in memory to send)."""
        return self.next_seq - self.low

    @property
    def torn_blocks(self) -> int:
        """Unreadable regions found (at open or read back)."""
        return self.damage.damaged_regions

    def oldest_age_s(self, now: float | None = None) -> float | None:
        """Age of the oldest unacknowledged record (to within one flush interval)."""
        if self.next_seq == self.low:
            return None
        now = time.time() if now is None else now
        for block in self._blocks:
            if block.end_seq > self.low:
                return max(0.0, now - block.written_at)
        return max(0.0, now - self._pending_since) if self._pending else None

    # -- the hot path -----------------------------------------------------------------

    def append(self, data: bytes) -> int:
        """The record's sequence number, or -1 when it would exceed ``max_bytes``."""
        size = len(data) + 4
        pending = self._pending
        if not pending:
            size += BLOCK_HEADER.size  # the block these records will be written as
        if self._disk_bytes + self._writing_bytes + self._pending_bytes + size > self.max_bytes:
            return -1
        if not pending:
            self._pending_since = time.time()
        pending.append(data)
        self._pending_bytes += size
        seq = self.next_seq
        self.next_seq = seq + 1
        return seq

    def append_many(self, records: list[bytes]) -> int:
        """``append`` for several records at once: the first one's sequence number (the rest
        follow it), or -1, with none of them taken, when they would not all fit."""
        if not records:
            return self.next_seq
        pending = self._pending
        size = sum(map(len, records)) + 4 * len(records)
        if not pending:
            size += BLOCK_HEADER.size
        if self._disk_bytes + self._writing_bytes + self._pending_bytes + size > self.max_bytes:
            return -1
        if not pending:
            self._pending_since = time.time()
        pending.extend(records)
        self._pending_bytes += size
        first = self.next_seq
        self.next_seq = first + len(records)
        return first

    def ack_below(self, seq: int) -> None:
        if seq > self.low:
            self.low = seq
            blocks = self._blocks
            while blocks and blocks[0].end_seq <= seq:
                blocks.popleft()

    # -- open -------------------------------------------------------------------------

    def open(self) -> None:
        """Blocking (run it in a thread): lock the directory, set aside a spool written for
        another destination, read the checkpoint, scan and validate segments. Raises
        ``SpoolError``."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise SpoolError(f"spool directory {self.directory}: {error}") from error
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise SpoolError(
                f"spool directory {self.directory} is in use by another process"
            ) from error
        try:
            self._check_destination()
            checkpoint = self._open_checkpoint()
            segments = [_scan(path, self.damage) for path in _segment_paths(self.directory)]
        except OSError as error:
            self._release()
            raise SpoolError(f"spool directory {self.directory}: {error}") from error
        self._adopt(segments, checkpoint)
        self._pending_first = self.next_seq
        self._opened = True

    def _adopt(self, segments: list[tuple[_Segment, list[_Block]]], checkpoint: int) -> None:
        """Take the scanned blocks in order; report every sequence range that is missing."""
        blocks = [b for _, found in segments for b in found]
        last_end = max((b.end_seq for b in blocks), default=checkpoint)
        if blocks and checkpoint > last_end:
            # Every flush deletes segments whose records are all acknowledged, so a mark past
            # every record on disk cannot be right: replay them all (duplicates, not loss).
            why = f"checkpoint {checkpoint} is past the last record on disk ({last_end})"
            self.damage.checkpoint_ignored = why
            log.error("spool: %s; replaying every record on disk", why)
            checkpoint = min(b.first_seq for b in blocks)
        expected = checkpoint
        for segment, found in segments:
            for block in found:
                if block.end_seq <= expected:  # acknowledged, or a repeat of what came before
                    if block.first_seq >= checkpoint:
                        self.damage.damaged_regions += 1
                    continue
                self._lost(expected, block.first_seq, f"before {segment.path.name}")
                self._blocks.append(block)
                expected = block.end_seq
            self._segments.append(segment)
            self._disk_bytes += segment.size
        # A damaged block after the last valid one (its header intact): lost, and its
        # sequence numbers are not reused.
        self._lost(expected, self.damage.damaged_end, "after the last valid block")
        expected = max(expected, self.damage.damaged_end)
        self.low = checkpoint
        self.next_seq = max(expected, checkpoint)
        self._saved_low = checkpoint

    def _lost(self, start: int, end: int, where: str) -> None:
        if end > start:
            self.damage.lose(start, end)
            log.error(
                "spool: records %d..%d (%d) lost to damage (%s)", start, end - 1, end - start, where
            )

    def _check_destination(self) -> None:
        """A spool accepted for another destination is moved aside, never replayed here."""
        if self.destination is None:
            return
        path = self.directory / DESTINATION_FILE
        try:
            found = json.loads(path.read_text())
        except FileNotFoundError:
            found = None
        except (OSError, ValueError):
            found = "unreadable"
        if found != self.destination and _has_records(self.directory):
            self._set_aside(found)
        if found != self.destination:
            temporary = self.directory / f"{DESTINATION_FILE}.tmp"
            temporary.write_text(json.dumps(self.destination, sort_keys=True))
            _fsync_file(temporary)
            os.replace(temporary, path)
            _fsync_dir(self.directory)

    def _set_aside(self, found: object) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.directory / f"foreign-{stamp}"
        index = 0
        while aside.exists():
            index += 1
            aside = self.directory / f"foreign-{stamp}-{index}"
        aside.mkdir()
        moved = 0
        for path in list(_segment_paths(self.directory)):
            moved += path.stat().st_size
            os.replace(path, aside / path.name)
        for name in ("checkpoint", DESTINATION_FILE):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self.directory / name, aside / name)
        _fsync_dir(self.directory)
        entry = {"path": str(aside), "destination": found, "bytes": moved}
        self.kept_aside.append(entry)
        log.error(
            "spool: records written for another destination (%s, this one is %s) moved to %s "
            "(%d bytes): not published here; replay them with a service configured for that "
            "destination, or delete them",
            json.dumps(found),
            json.dumps(self.destination),
            aside,
            moved,
        )

    def _open_checkpoint(self) -> int:
        """The low-water mark of the newest valid slot (0 when none), keeping the file open
        for in-place updates."""
        path = self.directory / "checkpoint"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._checkpoint_fd = fd
        raw = os.pread(fd, 2 * CHECKPOINT_SLOT.size, 0)
        best: tuple[int, int] | None = None
        for slot in range(2):
            chunk = raw[slot * CHECKPOINT_SLOT.size : (slot + 1) * CHECKPOINT_SLOT.size]
            if len(chunk) < CHECKPOINT_SLOT.size:
                continue
            magic, generation, low, crc = CHECKPOINT_SLOT.unpack(chunk)
            valid = magic == CHECKPOINT_MAGIC and zlib.crc32(chunk[:-4]) == crc
            if valid and (best is None or generation > best[0]):
                best = (generation, low)
        if raw.strip(b"\0") and best is None:  # zeros: slots reserved, never written
            why = "checkpoint unreadable (both slots fail their check)"
            self.damage.checkpoint_ignored = why
            log.error("spool: %s: replaying every record on disk", why)
        if len(raw) < 2 * CHECKPOINT_SLOT.size:  # reserve both slots now, while there is room
            os.pwrite(fd, raw.ljust(2 * CHECKPOINT_SLOT.size, b"\0"), 0)
            os.fsync(fd)
        if best is None:
            return 0
        self._generation = best[0]
        return best[1]

    # -- flush --------------------------------------------------------------------------

    async def flush(self) -> None:
        """Persist the mark, delete acknowledged segments, write and fsync what was appended
        and is still unacknowledged."""
        async with self._io:
            records, first, size, since = self._take_pending()
            low = self.low
            if not records and low == self._saved_low:
                return
            self._writing_bytes = size
            # A write cannot be interrupted: even when flush is cancelled, wait for the
            # thread and account for its outcome, then let the cancellation through.
            task = asyncio.ensure_future(asyncio.to_thread(self._write, records, first, low))
            cancelled = False
            while not task.done():
                try:
                    await asyncio.wait([task])
                except asyncio.CancelledError:
                    cancelled = True
            self._writing_bytes = 0
            freed, block, error = task.result()
            self._disk_bytes -= freed
            if error is not None:
                self._write_failed(error, records, first, size, since)
            else:
                self._written(block, first + len(records))
            if cancelled:
                raise asyncio.CancelledError

    def _take_pending(self) -> tuple[list[bytes], int, int, float]:
        """The pending records minus those acknowledged meanwhile (they never need the
        disk): (records, first sequence, bytes accounted for them, since)."""
        records, self._pending = self._pending, []
        first, size = self._pending_first, self._pending_bytes
        self._pending_bytes = 0
        since = self._pending_since
        acked = min(len(records), self.low - first)
        if acked > 0:
            records = records[acked:]
            first += acked
            self._pending_first = first
            size = sum(map(len, records)) + 4 * len(records) + BLOCK_HEADER.size if records else 0
        return records, first, size, since

    def _write_failed(
        self, error: OSError, records: list[bytes], first: int, size: int, since: float
    ) -> None:
        """Keep what was not written in memory (bounded by ``max_bytes``, acknowledged
        records leave it at every flush) and report the degraded durability."""
        self._pending = records + self._pending
        self._pending_bytes += size
        self._pending_since = since
        self._pending_first = first
        self.write_errors += 1
        if self.healthy or not self.write_errors % 100:
            log.error(
                "spool write failed: unacknowledged envelopes are held in memory only until "
                "the bus acknowledges them (%s)",
                error,
            )
        self.healthy = False
        self.last_error = f"{type(error).__name__}: {error}"

    def _written(self, block: _Block | None, end: int) -> None:
        self._pending_first = end
        if block is None:  # nothing needed the disk: no news about it either
            return
        self._disk_bytes += block.size
        if block.end_seq > self.low:
            self._blocks.append(block)
        if not self.healthy:
            log.info("spool writes work again")
        self.healthy = True

    def _write(
        self, records: list[bytes], first: int, low: int
    ) -> tuple[int, _Block | None, OSError | None]:
        """Blocking, in a worker thread: (bytes freed, block written, error)."""
        freed = 0
        try:
            if low != self._saved_low:
                self._write_checkpoint(low)
                freed = self._delete_acked(low)
            if not records:
                return freed, None, None
            return freed, self._write_block(records, first), None
        except OSError as error:
            return freed, None, error

    def _write_block(self, records: list[bytes], first: int) -> _Block:
        # One copy of the records (the join); the header is written separately.
        body = b"".join([struct.pack(f"<{len(records)}I", *map(len, records)), *records])
        written_at = time.time()
        fields = _HEADER_FIELDS.pack(
            MAGIC, len(records), first, int(written_at * 1000), len(body), zlib.crc32(body)
        )
        header = fields + struct.pack("<I", zlib.crc32(fields))
        segment = self._segment_for(first)
        handle = self._file
        assert handle is not None
        offset = segment.size
        try:
            handle.write(header)
            handle.write(body)  # larger than the buffer: written straight through
            handle.flush()
            os.fsync(handle.fileno())
        except OSError:
            # A partial write would leave a torn block mid-segment: cut it off. (The block
            # was never acknowledged as written: its records are still held in memory.)
            with contextlib.suppress(OSError):
                handle.truncate(offset)
            self._close_file()
            raise
        segment.size += len(header) + len(body)
        segment.end_seq = first + len(records)
        return _Block(
            first, len(records), segment.path, offset, len(header) + len(body), written_at
        )

    def _segment_for(self, first: int) -> _Segment:
        segments = self._segments
        if self._file is not None and segments and segments[-1].size < self.segment_bytes:
            return segments[-1]
        self._close_file()
        path = self.directory / f"{first:020d}{SEGMENT_SUFFIX}"
        index = 0
        while path.exists():  # a segment of a previous run starting at the same sequence
            index += 1
            path = self.directory / f"{first:020d}_{index}{SEGMENT_SUFFIX}"
        self._file = open(path, "ab")  # noqa: SIM115 - kept open across flushes
        segment = _Segment(first, path, 0, first)
        segments.append(segment)
        _fsync_dir(self.directory)
        return segment

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _write_checkpoint(self, low: int) -> None:
        """In place, the older of the two slots: no new disk space, and a torn write leaves
        the other slot valid."""
        assert self._checkpoint_fd is not None
        generation = self._generation + 1
        fields = CHECKPOINT_SLOT.pack(CHECKPOINT_MAGIC, generation, low, 0)[:-4]
        raw = fields + struct.pack("<I", zlib.crc32(fields))
        os.pwrite(self._checkpoint_fd, raw, (generation % 2) * CHECKPOINT_SLOT.size)
        os.fsync(self._checkpoint_fd)
        self._generation = generation
        self._saved_low = low

    def _delete_acked(self, low: int) -> int:
        """Segments whose every record is below the persisted mark, the one in use included
        (a small disk must get its space back without waiting for a roll-over)."""
        segments = self._segments
        freed = 0
        while segments:
            segment = segments[0]
            if segment.end_seq > low:
                break
            if len(segments) == 1:
                self._close_file()
            try:
                segment.path.unlink(missing_ok=True)
            except OSError as error:
                log.error("spool: cannot delete %s: %s", segment.path.name, error)
                break
            segments.popleft()
            freed += segment.size
        return freed

    # -- read back ------------------------------------------------------------------------

    async def read(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records from ``from_seq`` on, in order, as (sequence, bytes)."""
        records, _ = await self.read_from(from_seq, limit)
        return records

    async def read_from(self, from_seq: int, limit: int) -> tuple[list[tuple[int, bytes]], int]:
        """(records, where the next read starts). A block that fails its CRC now is skipped
        and its range reported lost: the caller sees a gap in the sequence numbers and moves
        on past it rather than stalling on it or skipping anything after it."""
        async with self._io:
            blocks = [b for b in self._blocks if b.end_seq > from_seq]
            out: list[tuple[int, bytes]] = []
            next_from = from_seq
            if blocks:
                chosen: list[_Block] = []
                total = 0
                for block in blocks:
                    chosen.append(block)
                    total += block.end_seq - max(block.first_seq, from_seq)
                    if total >= limit:
                        break
                out = await asyncio.to_thread(self._read_blocks, chosen, from_seq, limit)
                next_from = chosen[-1].end_seq
            if len(out) < limit and self._pending:
                start = max(from_seq, self._pending_first) - self._pending_first
                taken = self._pending[start : start + limit - len(out)]
                out.extend((self._pending_first + i, data) for i, data in enumerate(taken, start))
                if taken:
                    next_from = self._pending_first + start + len(taken)
            if len(out) >= limit > 0:  # a block may hold more than was asked for
                out = out[:limit]
                next_from = out[-1][0] + 1
            if not blocks and not out:
                next_from = max(from_seq, self.next_seq)
            return out, next_from

    def _read_blocks(
        self, blocks: list[_Block], from_seq: int, limit: int
    ) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for block in blocks:
            records = self._read_block(block)
            start = max(block.first_seq, from_seq)
            if records is None:
                if (block.segment, block.offset) not in self._reported:
                    self._reported.add((block.segment, block.offset))
                    self.corrupt_reads += 1
                    self.damage.damaged_regions += 1
                    where = f"{block.segment.name}:{block.offset} read back"
                    self._lost(start, block.end_seq, where)
                continue
            skip = start - block.first_seq
            taken = records[skip : skip + limit - len(out)]
            out.extend(zip(range(start, start + len(taken)), taken, strict=True))
            if len(out) >= limit:
                break
        return out

    def _read_block(self, block: _Block) -> list[bytes] | None:
        """A block's records, or None when it fails its check. The last block read is kept:
        a read-back takes a block a window's worth at a time, and must not read, check and
        split the whole block again for each part."""
        cached = self._last_read
        if cached is not None and cached[0] is block:
            return cached[1]
        try:
            with open(block.segment, "rb") as handle:
                handle.seek(block.offset)
                raw = handle.read(block.size)
        except OSError as error:
            raw = b""
            log.error("spool: cannot read %s: %s", block.segment.name, error)
        records = _parse_block(raw)
        self._last_read = None if records is None else (block, records)
        return records

    # -- close --------------------------------------------------------------------------

    async def close(self) -> None:
        """Flush (fsync) and release the directory."""
        if not self._opened:
            return
        await self.flush()
        async with self._io:
            self._release()
            self._opened = False

    def _release(self) -> None:
        self._close_file()
        for name in ("_checkpoint_fd", "_lock_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def describe(self) -> dict[str, object]:
        age = self.oldest_age_s()
        return {
            "directory": str(self.directory),
            "destination": self.destination,
            "bytes": self.held_bytes,
            "maxBytes": self.max_bytes,
            "records": self.count,
            "oldestAgeSeconds": None if age is None else round(age, 3),
            "segments": len(self._segments),
            "fsyncIntervalMs": round(self.fsync_interval_s * 1000),
            "healthy": self.healthy,
            "degraded": "" if self.healthy else self.last_error,
            "damage": self.damage.describe(),
            "corruptReads": self.corrupt_reads,
            "writeErrors": self.write_errors,
            "lastError": self.last_error,
            "keptAside": self.kept_aside,
        }


def _segment_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SEGMENT_SUFFIX}"))


def _has_records(directory: Path) -> bool:
    return any(path.stat().st_size for path in _segment_paths(directory))


def _segment_first(path: Path) -> int:
    with contextlib.suppress(ValueError):
        return int(path.stem.split("_")[0])
    return 0


def _scan(path: Path, damage: Damage) -> tuple[_Segment, list[_Block]]:
    """Every valid block of a segment, resynchronising past damage on the next valid header.
    A damaged block whose header is still valid is reported lost by its own range; one whose
    header is not shows up as a gap between its neighbours' sequence numbers."""
    data = path.read_bytes()
    blocks: list[_Block] = []
    offset = 0
    while offset < len(data):
        header = _parse_header(data, offset)
        if header is not None and _body_ok(data, offset, header):
            count, seq, written_ms, body_len, _ = header
            size = BLOCK_HEADER.size + body_len
            blocks.append(_Block(seq, count, path, offset, size, written_ms / 1000))
            offset += size
            continue
        following = _next_valid(data, offset + 1)
        skipped = following - offset
        damage.damaged_regions += 1
        damage.unreadable_bytes += skipped
        if header is not None:  # the header vouches for the range the body held
            count, seq = header[0], header[1]
            damage.damaged_end = max(damage.damaged_end, seq + count)  # reported by _adopt
            log.error(
                "spool segment %s: block at byte %d (records %d..%d) failed its check",
                path.name,
                offset,
                seq,
                seq + count - 1,
            )
        elif following == len(data):
            damage.tail_bytes += skipped
            log.error(
                "spool segment %s: %d unreadable bytes at byte %d, after its last valid block "
                "(a write torn by a crash, or damage)",
                path.name,
                skipped,
                offset,
            )
        else:
            log.error("spool segment %s: %d damaged bytes at %d", path.name, skipped, offset)
        offset = following
    first = blocks[0].first_seq if blocks else _segment_first(path)
    end = blocks[-1].end_seq if blocks else first
    return _Segment(first, path, len(data), end), blocks


def _next_valid(data: bytes, start: int) -> int:
    """Offset of the next block whose header and body both check out, or the end."""
    while True:
        offset = data.find(MAGIC, start)
        if offset < 0:
            return len(data)
        header = _parse_header(data, offset)
        if header is not None and _body_ok(data, offset, header):
            return offset
        start = offset + 1


def _parse_header(data: bytes, offset: int) -> tuple[int, int, int, int, int] | None:
    """(count, first seq, written at ms, body length, body crc) of a header whose own CRC
    checks out and whose body fits in ``data``, else None."""
    end = offset + BLOCK_HEADER.size
    if end > len(data):
        return None
    magic, count, seq, written_ms, body_len, body_crc, crc = BLOCK_HEADER.unpack_from(data, offset)
    if magic != MAGIC or zlib.crc32(memoryview(data)[offset : end - 4]) != crc:
        return None
    if count * 4 > body_len:
        return None
    return count, seq, written_ms, body_len, body_crc


def _body_ok(data: bytes, offset: int, header: tuple[int, int, int, int, int]) -> bool:
    start = offset + BLOCK_HEADER.size
    body_len = header[3]
    if start + body_len > len(data):
        return False
    return zlib.crc32(memoryview(data)[start : start + body_len]) == header[4]


def _parse_block(raw: bytes) -> list[bytes] | None:
    header = _parse_header(raw, 0)
    if header is None or not _body_ok(raw, 0, header):
        return None
    count, _, _, body_len, _ = header
    start = BLOCK_HEADER.size
    lengths = struct.unpack_from(f"<{count}I", raw, start)
    position = start + 4 * count
    records = []
    for length in lengths:
        records.append(raw[position : position + length])
        position += length
    if position != start + body_len:
        return None
    return records


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """A new file's directory entry is durable only once the directory is fsynced."""
    with contextlib.suppress(OSError):
        _fsync_file(directory)
