"""A write-ahead journal of encoded envelopes in local segment files.

Every accepted envelope is appended here before it is sent, so the journal holds what the
bus has not acknowledged yet; on start, those records are read back first, in order.

* ``append`` (on the event loop, per message) only adds the bytes to an in-memory list:
  the cheap part of the hot path.
* ``flush`` (every ``SPOOL_FSYNC_MS``, in a worker thread) writes what accumulated as one
  *block* and fsyncs it. A block is a header (magic, record count, first sequence number,
  write time, body length, CRC-32 of the body), a table of record lengths, then the records.
  A block torn by a crash fails its length or CRC check and is ignored (and counted).
* ``ack_below`` moves the low-water mark: every record below it is acknowledged. The mark is
  persisted in a small ``checkpoint`` file at each flush (written to a temporary file, then
  renamed), and segments holding only acknowledged records are deleted.

Records are numbered by sequence (0, 1, 2, ... over the journal's life): the numbering
survives restarts, so "everything from the checkpoint on" is the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

log = logging.getLogger("ingress_egress.spool")
_T = TypeVar("_T")

MAGIC = b"IEJ1"
BLOCK_HEADER = struct.Struct("<4sIQQII")  # magic, count, first seq, written at ms, body, crc
CHECKPOINT = struct.Struct("<QI")  # low-water sequence, crc32 of it
SEGMENT_SUFFIX = ".seg"
LENGTH = struct.Struct("<I")


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


class Spool:
    """One directory, one writer (an exclusive ``flock`` on ``lock`` enforces it)."""

    def __init__(
        self,
        directory: Path | str,
        max_bytes: int,
        fsync_interval_s: float = 0.05,
        segment_bytes: int | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.fsync_interval_s = fsync_interval_s
        self.segment_bytes = segment_bytes or max(4096, min(16 << 20, max_bytes // 8))
        self.next_seq = 0  # sequence of the next appended record
        self.low = 0  # every record below this is acknowledged
        self.torn_blocks = 0  # found at open: a crash mid-write, or corruption (ignored)
        self.corrupt_reads = 0  # blocks that failed their CRC when read back
        self.write_errors = 0
        self.last_error = ""
        self.healthy = True  # False while writes fail (records then wait in memory)
        self._pending: list[bytes] = []
        self._pending_first = 0
        self._pending_bytes = 0
        self._pending_since = 0.0
        self._disk_bytes = 0
        self._writing_bytes = 0  # a block being written by the worker thread
        self._segments: deque[_Segment] = deque()
        self._blocks: deque[_Block] = deque()  # on disk, not yet wholly acknowledged
        self._file: IO[bytes] | None = None
        self._lock_fd: int | None = None
        self._saved_low = -1
        self._io = asyncio.Lock()
        self._opened = False

    # -- figures --------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """What the spool holds: live segments on disk plus records not yet written."""
        return self._disk_bytes + self._writing_bytes + self._pending_bytes

    @property
    def count(self) -> int:
        """Records not yet acknowledged (including those also held in memory to send)."""
        return self.next_seq - self.low

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
        """Blocking (run it in a thread): lock the directory, read the checkpoint, scan and
        validate segments, truncate a torn tail. Raises ``SpoolError``."""
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
        checkpoint = self._read_checkpoint()
        paths = sorted(self.directory.glob(f"*{SEGMENT_SUFFIX}"))
        for index, path in enumerate(paths):
            self._scan(path, last=index == len(paths) - 1)
        if self._blocks:
            self.next_seq = max(self._blocks[-1].end_seq, checkpoint)
            self.low = max(checkpoint, self._blocks[0].first_seq)
        else:
            self.next_seq = self.low = checkpoint
        self.low = min(self.low, self.next_seq)
        self._pending_first = self.next_seq
        self._saved_low = checkpoint
        self.ack_below(self.low)
        self._opened = True

    def _read_checkpoint(self) -> int:
        try:
            raw = (self.directory / "checkpoint").read_bytes()
        except FileNotFoundError:
            return 0
        if len(raw) == CHECKPOINT.size:
            low, crc = CHECKPOINT.unpack(raw)
            if zlib.crc32(raw[:8]) == crc:
                return low
        log.error("spool checkpoint unreadable: replaying every record on disk")
        self.torn_blocks += 1
        return 0

    def _scan(self, path: Path, *, last: bool) -> None:
        data = path.read_bytes()
        offset = 0
        first_seq: int | None = None
        while offset < len(data):
            block = _parse_header(data, offset)
            if block is None:
                self.torn_blocks += 1
                log.error(
                    "spool segment %s: damaged block at byte %d ignored (%d bytes)",
                    path.name,
                    offset,
                    len(data) - offset,
                )
                break
            count, seq, written_ms, body_len = block
            self._blocks.append(
                _Block(seq, count, path, offset, BLOCK_HEADER.size + body_len, written_ms / 1000)
            )
            first_seq = seq if first_seq is None else first_seq
            offset += BLOCK_HEADER.size + body_len
        if offset < len(data) and last:
            with open(path, "r+b") as handle:  # drop the torn tail: appends stay parseable
                handle.truncate(offset)
                os.fsync(handle.fileno())
        if first_seq is None:  # nothing readable in it: nothing to keep
            path.unlink(missing_ok=True)
            return
        self._segments.append(_Segment(first_seq, path, offset))
        self._disk_bytes += offset

    # -- flush --------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write and fsync what was appended, save the checkpoint, delete acked segments."""
        async with self._io:
            records, self._pending = self._pending, []
            first, count = self._pending_first, len(records)
            size, self._pending_bytes = self._pending_bytes, 0
            since = self._pending_since
            low = self.low
            if not count and low == self._saved_low:
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
            try:
                block = task.result()
            except OSError as error:
                self._writing_bytes = 0
                self._pending = records + self._pending
                self._pending_bytes += size
                self._pending_since = since
                self.write_errors += 1
                if self.healthy or not self.write_errors % 100:
                    log.error("spool write failed (records kept in memory): %s", error)
                self.healthy = False
                self.last_error = f"{type(error).__name__}: {error}"
                if cancelled:
                    raise asyncio.CancelledError from None
                return
            self._writing_bytes = 0
            self._pending_first = first + count
            if block is not None:
                self._disk_bytes += block.size
                if block.end_seq > self.low:
                    self._blocks.append(block)
            self._saved_low = low
            if not self.healthy:
                log.info("spool writes work again")
            self.healthy = True
            self._delete_acked()
            if cancelled:
                raise asyncio.CancelledError

    def _write(self, records: list[bytes], first: int, low: int) -> _Block | None:
        """Blocking: runs in a worker thread."""
        block = None
        if records:
            # One copy of the records (the join); the header is written separately.
            body = b"".join([struct.pack(f"<{len(records)}I", *map(len, records)), *records])
            written_at = time.time()
            header = BLOCK_HEADER.pack(
                MAGIC, len(records), first, int(written_at * 1000), len(body), zlib.crc32(body)
            )
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
                # A partial write would leave a torn block mid-segment: cut it off.
                with contextlib.suppress(OSError):
                    handle.truncate(offset)
                raise
            segment.size += len(header) + len(body)
            block = _Block(
                first, len(records), segment.path, offset, len(header) + len(body), written_at
            )
        self._write_checkpoint(low)
        return block

    def _segment_for(self, first: int) -> _Segment:
        segments = self._segments
        if self._file is not None and segments and segments[-1].size < self.segment_bytes:
            return segments[-1]
        if self._file is not None:
            self._file.close()
            self._file = None
        if segments and segments[-1].size < self.segment_bytes:
            segment = segments[-1]  # the last segment found at open still has room
        else:
            path = self.directory / f"{first:020d}{SEGMENT_SUFFIX}"
            segment = _Segment(first, path, 0)
            segments.append(segment)
        self._file = open(segment.path, "ab")  # noqa: SIM115 - kept open across flushes
        if segment.size == 0:
            _fsync_dir(self.directory)
        return segment

    def _write_checkpoint(self, low: int) -> None:
        if low == self._saved_low:
            return
        raw = struct.pack("<Q", low)
        temporary = self.directory / "checkpoint.tmp"
        with open(temporary, "wb") as handle:
            handle.write(raw + struct.pack("<I", zlib.crc32(raw)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.directory / "checkpoint")

    def _delete_acked(self) -> None:
        """Segments whose every record is below the low-water mark (never the one in use)."""
        segments = self._segments
        while len(segments) > 1 and segments[1].first_seq <= self.low:
            segment = segments.popleft()
            try:
                segment.path.unlink(missing_ok=True)
            except OSError as error:
                log.error("spool: cannot delete %s: %s", segment.path.name, error)
                segments.appendleft(segment)
                return
            self._disk_bytes -= segment.size

    # -- read back ------------------------------------------------------------------------

    async def read(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records from ``from_seq`` on, in order, as (sequence, bytes).

        A block that fails its CRC is skipped (counted): the caller sees a gap in the
        sequence numbers and moves on rather than stalling on it.
        """
        async with self._io:
            blocks = [b for b in self._blocks if b.end_seq > from_seq]
            out: list[tuple[int, bytes]] = []
            if blocks:
                chosen: list[_Block] = []
                total = 0
                for block in blocks:
                    chosen.append(block)
                    total += block.end_seq - max(block.first_seq, from_seq)
                    if total >= limit:
                        break
                out = await asyncio.to_thread(self._read_blocks, chosen, from_seq)
            if len(out) < limit and self._pending:
                start = max(from_seq, self._pending_first) - self._pending_first
                stop = start + limit - len(out)
                out.extend(
                    (self._pending_first + i, data)
                    for i, data in enumerate(self._pending[start:stop], start)
                )
            return out[:limit]

    def _read_blocks(self, blocks: list[_Block], from_seq: int) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        for block in blocks:
            try:
                with open(block.segment, "rb") as handle:
                    handle.seek(block.offset)
                    raw = handle.read(block.size)
            except OSError as error:
                log.error("spool: cannot read %s: %s", block.segment.name, error)
                self.corrupt_reads += 1
                continue
            records = _parse_block(raw)
            if records is None:
                log.error(
                    "spool: block at %s:%d failed its check", block.segment.name, block.offset
                )
                self.corrupt_reads += 1
                continue
            for i, data in enumerate(records):
                seq = block.first_seq + i
                if seq >= from_seq:
                    out.append((seq, data))
        return out

    # -- close --------------------------------------------------------------------------

    async def close(self) -> None:
        """Flush (fsync) and release the directory."""
        if not self._opened:
            return
        await self.flush()
        async with self._io:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._opened = False

    def describe(self) -> dict[str, object]:
        age = self.oldest_age_s()
        return {
            "directory": str(self.directory),
            "bytes": self.bytes,
            "maxBytes": self.max_bytes,
            "records": self.count,
            "oldestAgeSeconds": None if age is None else round(age, 3),
            "segments": len(self._segments),
            "fsyncIntervalMs": round(self.fsync_interval_s * 1000),
            "healthy": self.healthy,
            "tornBlocks": self.torn_blocks,
            "corruptReads": self.corrupt_reads,
            "writeErrors": self.write_errors,
            "lastError": self.last_error,
        }


def _parse_header(data: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """(count, first seq, written at ms, body length) of a whole, intact block, else None."""
    end = offset + BLOCK_HEADER.size
    if end > len(data):
        return None
    magic, count, seq, written_ms, body_len, crc = BLOCK_HEADER.unpack_from(data, offset)
    if magic != MAGIC or end + body_len > len(data) or count * 4 > body_len:
        return None
    if zlib.crc32(memoryview(data)[end : end + body_len]) != crc:
        return None
    return count, seq, written_ms, body_len


def _parse_block(raw: bytes) -> list[bytes] | None:
    header = _parse_header(raw, 0)
    if header is None:
        return None
    count, _, _, body_len = header
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


def _fsync_dir(directory: Path) -> None:
    """A new file's directory entry is durable only once the directory is fsynced."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
