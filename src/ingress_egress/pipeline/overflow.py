"""Spill and read-back: the envelopes that do not fit the pipeline's window wait in the spool.

Every envelope is written ahead to the spool by the pipeline. While the window
(``QUEUE_MAX_MESSAGES``) is full - or a previous run left envelopes behind - new envelopes
*spill*: they live in the spool only, and ``Overflow.next_read`` is the spool sequence of
the oldest of them. Once the window has room the sender reads them back, in order, before
anything newer. A burst's spill is also kept in memory up to a budget, so that reading it
back costs no disk read, CRC or JSON parse.

The spool's own upkeep is here too: opening it (with what a previous run left), the
periodic flush, reporting damage found while reading, and closing it at the frontier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence

from ingress_egress.envelope import OutboundMessage
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.pipeline.outbound import from_spooled
from ingress_egress.spool import Spool, SpoolError
from ingress_egress.status import Counters, ErrorLog

log = logging.getLogger("ingress_egress.pipeline")

READ_BACK_MAX = 1024  # records read back from the spool at once
# Spilled envelopes also kept in memory, up to this share of SPOOL_MAX_BYTES (at most
# SPILL_MEMORY_MAX): a burst's read-back then costs no disk read, CRC or JSON parse. Beyond
# it they live in the spool only, and are read back from disk.
SPILL_MEMORY_SHARE = 16
SPILL_MEMORY_MAX = 32 << 20


class Overflow:
    """The spill of one pipeline's spool; every method but ``open`` needs an open spool."""

    def __init__(self, spool: Spool, counters: Counters, errors: ErrorLog) -> None:
        self.spool = spool
        self.counters = counters
        self.errors = errors
        # Spool sequence of the next record to read back; -1: nothing spilled. A plain
        # attribute: the accept path reads it once per read.
        self.next_read = -1
        # Spilled envelopes still in memory: consecutive sequences, the first at
        # ``next_read`` or later (then the ones before it are read back from disk).
        self._kept: deque[OutboundMessage] = deque()
        self._kept_bytes = 0
        self._budget = min(spool.max_bytes // SPILL_MEMORY_SHARE, SPILL_MEMORY_MAX)
        self._ids = RandomIds()  # span ids of envelopes read back from the spool
        self._checkpoint_reported = False

    # -- the spool's lifecycle ------------------------------------------------------------

    async def open(self) -> bool:
        """Open the spool (a thread: it reads what a previous run left); ``False``: it is
        unusable (reported), and the pipeline runs with memory only."""
        spool = self.spool
        try:
            await asyncio.to_thread(spool.open)
        except (SpoolError, OSError) as error:
            self.errors.add("spool_unavailable", str(error))
            log.error("spool unavailable, running without one (nothing durable): %s", error)
            return False
        left = spool.next_seq - spool.low
        if left:
            self.next_read = spool.low
            log.info("spool: %d envelope(s) left by the previous run are sent first", left)
        for aside in spool.kept_aside:
            self.errors.add(
                "spool_foreign",
                f"spool written for {aside['destination']} kept aside in {aside['path']}",
            )
        self._report_damage()
        return True

    async def flush_loop(self) -> None:
        spool = self.spool
        while True:
            await asyncio.sleep(spool.fsync_interval_s)
            try:
                await spool.flush()
            except Exception:  # never let the flusher die: the journal is the guarantee
                log.exception("spool flush failed unexpectedly")

    async def close(self, frontier: int) -> None:
        """Everything below ``frontier`` was acknowledged; the rest is kept for the next start."""
        spool = self.spool
        spool.ack_below(frontier)
        try:
            await spool.close()
        except OSError as error:
            log.error("spool: final flush failed: %s", error)
        left = spool.count
        if left:
            log.info("spool: %d envelope(s) kept for the next start", left)

    def _report_damage(self) -> None:
        """The spool's damage as counted loss (``spoolLost``) and a readable error."""
        damage = self.spool.damage
        if damage.lost_records == self.counters.spool_lost and not damage.checkpoint_ignored:
            return
        if damage.lost_records > self.counters.spool_lost:
            ranges = ", ".join(f"{a}..{b - 1}" for a, b in list(damage.lost_ranges)[-5:])
            self.errors.add(
                "spool_damaged",
                f"{damage.lost_records} spooled envelope(s) lost to damage (records {ranges})",
            )
            self.counters.spool_lost = damage.lost_records
        if damage.checkpoint_ignored and not self._checkpoint_reported:
            self._checkpoint_reported = True
            self.errors.add("spool_checkpoint", damage.checkpoint_ignored)

    # -- spilling (the read loop's side) ----------------------------------------------------

    @property
    def waiting(self) -> int:
        """Envelopes that live in the spool only, waiting to be read back."""
        return self.spool.next_seq - self.next_read if self.next_read >= 0 else 0

    @property
    def kept_in_memory(self) -> int:
        return len(self._kept)

    def spill_run(self, run: Sequence[OutboundMessage]) -> bool:
        """While spilling: write a read's envelopes to the spool (one append); ``False`` if
        the spool cannot take them all (then nothing was written)."""
        first = self.spool.append_many([m.data for m in run])
        if first < 0:
            return False
        for seq, outbound in enumerate(run, first):
            outbound.seq = seq
        self.counters.received += len(run)
        self.counters.spilled += len(run)
        self._keep(run)
        return True

    def spill_one(self, outbound: OutboundMessage) -> None:
        """``outbound`` is in the spool already (its ``seq`` set) and does not fit the window."""
        if self.next_read < 0:
            self.next_read = outbound.seq
        self.counters.spilled += 1
        self._keep((outbound,))

    def _keep(self, run: Sequence[OutboundMessage]) -> None:
        """Keep spilled envelopes in memory too while they follow on and fit the budget."""
        kept = self._kept
        for outbound in run:
            expected = kept[-1].seq + 1 if kept else self.next_read
            size = len(outbound.data)
            if outbound.seq != expected or self._kept_bytes + size > self._budget:
                return  # from here on, read back from the spool
            kept.append(outbound)
            self._kept_bytes += size

    # -- reading back (the sender's side) -------------------------------------------------

    @staticmethod
    def read_back_min(queue_max: int) -> int:
        """The room the window needs before a read-back is worth it."""
        return max(1, min(READ_BACK_MAX, queue_max // 4))

    async def read_back(self, window: deque[OutboundMessage], room: int) -> None:
        """Move up to ``room`` spilled envelopes onto the end of ``window``, in order (the
        spill, or a restart's rest); ``next_read`` is -1 once all are back."""
        spool = self.spool
        start = self.next_read
        kept = self._kept
        if kept and kept[0].seq == start:
            self._take_kept(window, min(room, READ_BACK_MAX))
            return
        limit = min(room, READ_BACK_MAX)
        if kept:
            limit = min(limit, kept[0].seq - start)
        records, next_from = await spool.read_from(start, limit)
        if spool.damage.lost_records != self.counters.spool_lost:
            self._report_damage()
        now = time.monotonic()
        for seq, data in records:
            try:
                message = from_spooled(data, self._ids.span_id(), now)
            except Exception as error:  # a record we wrote ourselves, damaged on disk
                self.counters.failed += 1
                self.errors.add("spool_record_invalid", f"spool record {seq}: {error}")
                log.error("spool record %d unreadable, skipped: %s", seq, error)
                continue
            message.seq = seq
            window.append(message)
        self.counters.replayed += len(records)
        self.next_read = next_from if next_from < spool.next_seq else -1

    def _take_kept(self, window: deque[OutboundMessage], limit: int) -> None:
        """Read back from memory: the envelopes as they were accepted, nothing parsed."""
        kept = self._kept
        count = min(limit, len(kept))
        taken = 0
        for _ in range(count):
            message = kept.popleft()
            taken += len(message.data)
            window.append(message)
        self._kept_bytes -= taken
        self.counters.replayed += count
        after = window[-1].seq + 1
        self.next_read = after if after < self.spool.next_seq else -1
