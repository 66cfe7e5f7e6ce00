"""The pipeline: envelopes -> spool + bounded window -> bus, acks pipelined.

* ``accept_many`` (and ``accept``) take the envelopes a source built (``OutboundMessage``:
  the envelope's JSON and its bus metadata); they are synchronous and never block the
  Twitch read loop. With a spool, every envelope is first appended to its write-ahead
  journal (flushed and fsynced every ``SPOOL_FSYNC_MS``); it then joins the in-memory
  window (``QUEUE_MAX_MESSAGES``) or, when the window is full, lives only in the spool
  until the sender reads it back, in order.
* One sender task publishes in receipt order and keeps up to ``max_in_flight`` acks
  outstanding instead of awaiting each in turn.
* Go-back-N: when a publish or an ack fails (or times out), nothing later may overtake it.
  Sending pauses, waits a jittered, capped exponential backoff (``ingress_egress.retry``), then
  re-sends everything unacknowledged from the oldest, in order. The bus de-duplicates the
  repeats (JetStream by ``Nats-Msg-Id``; Pub/Sub consumers by ``payload.messageId``). A
  transient failure is retried forever: after ``PUBLISH_MAX_RETRIES`` rounds in a row it is
  logged as an error (and again every as many rounds), the envelopes stay in the spool.
* A permanent rejection (too large, invalid) goes to the dead-letter destination with the
  reason, and a failure status towards the finalizer (``DeadLetters``).
* Acknowledged envelopes move the spool's low-water mark, so a restart replays only the rest.
* What does not fit the window spills to the spool and is read back in order: ``Overflow``
  (pipeline/overflow.py). The window itself (sent and not yet sent) is this module's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from itertools import islice
from typing import Any, Protocol

from ingress_egress.bus.base import BusError, Publisher
from ingress_egress.envelope import OutboundMessage
from ingress_egress.envelope.types import MESSAGE
from ingress_egress.pipeline.dead_letters import DeadLetters
from ingress_egress.pipeline.overflow import Overflow
from ingress_egress.retry import Backoff
from ingress_egress.spool import Spool
from ingress_egress.status import Counters, ErrorLog, LatencyHistogram

log = logging.getLogger("ingress_egress.pipeline")

# Sends between yields: a driver that never suspends must not starve reads. As large as the
# default in-flight cap, so one turn of the loop can send what one socket read brought
# (about 300 chat lines per 64 KiB read): a smaller slice let a burst outrun the sender,
# fill the window and spill to the spool with the bus idle (bench/run.py, serve defaults).
SEND_SLICE = 1024


class DeliveryObserver(Protocol):
    """Told once per settled envelope: (message, monotonic settle time, error or None)."""

    def __call__(
        self, message: OutboundMessage, settled_at: float, error: BaseException | None, /
    ) -> None: ...


def _retryable(error: BaseException) -> bool:
    return not (isinstance(error, BusError) and error.permanent)


class _Batch:
    """Consecutive messages confirmed by one future (a driver's shared batch ack)."""

    __slots__ = ("count", "deadline", "future")

    def __init__(self, future: asyncio.Future[Any], deadline: float, count: int = 1) -> None:
        self.future = future
        self.count = count
        self.deadline = deadline


class Pipeline:
    def __init__(
        self,
        publisher: Publisher,
        counters: Counters,
        errors: ErrorLog,
        *,
        max_retries: int = 5,
        max_in_flight: int = 1024,
        queue_max: int = 10_000,
        ack_timeout_s: float = 10.0,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
        spool: Spool | None = None,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.publisher = publisher
        self.counters = counters
        self.errors = errors
        self.max_retries = max_retries
        self.max_in_flight = max_in_flight
        self.queue_max = queue_max
        self.ack_timeout_s = ack_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.spool = spool
        self.dead_letters = dead_letters
        self.latency = LatencyHistogram()
        # Telemetry's per-message hook (spans, OTel histogram); None unless one is exported.
        self.observer: DeliveryObserver | None = None
        self._unsent: deque[OutboundMessage] = deque()  # the window's part not sent yet
        self._unacked: deque[OutboundMessage] = deque()  # sent, oldest first
        self._batches: deque[_Batch] = deque()  # partitions _unacked, in order
        self._open_batch: _Batch | None = None
        self._wake = asyncio.Event()
        self._failure: BaseException | None = None
        self._failed_rounds = 0  # consecutive go-back rounds without an ack
        self._retry_backoff = Backoff(retry_initial_s, retry_max_s)
        # Spill and read-back: exists exactly while ``spool`` does.
        self.overflow = Overflow(spool, counters, errors) if spool is not None else None
        self._refused_log_at = 0.0
        self._refused_unlogged = 0
        self._tasks: list[asyncio.Task[None]] = []
        # Envelopes built, by type (``envelopes_by_type``): counted per message on the typed
        # path only; the C path's runs (chat messages only) add one sum per read.
        self._typed_built: dict[str, int] = {}
        self._run_built = 0
        self._flusher: asyncio.Task[None] | None = None

    # -- the read loop's side -------------------------------------------------------

    def accept(self, outbound: OutboundMessage) -> None:
        """One envelope (the EventSub source hands them over one at a time)."""
        self._typed_built[outbound.type] = self._typed_built.get(outbound.type, 0) + 1
        self._accept(outbound)

    def accept_many(self, envelopes: list[OutboundMessage], *, chat_only: bool = False) -> None:
        """One read's envelopes, in receipt order. ``chat_only``: all are chat messages (the
        IRC codec's common case), counted by type with one addition."""
        if not envelopes:
            return
        if chat_only:
            self._run_built += len(envelopes)
        else:
            built = self._typed_built
            for outbound in envelopes:
                built[outbound.type] = built.get(outbound.type, 0) + 1
        self._accept_run(envelopes)

    def envelopes_by_type(self) -> dict[str, int]:
        """Envelopes accepted so far, by envelope type."""
        counts = dict(self._typed_built)
        counts[MESSAGE] = counts.get(MESSAGE, 0) + self._run_built
        return counts

    def _accept_run(self, run: list[OutboundMessage]) -> None:
        """``_accept`` for consecutive envelopes: at once when the window has room for all
        of them (and, with a spool, nothing spilled and the spool takes them all: the
        common case), else one by one."""
        unsent, spool, overflow = self._unsent, self.spool, self.overflow
        spilling = False
        if overflow is not None and overflow.next_read >= 0:
            if overflow.spill_run(run):  # spilling: all to the spool
                return
            spilling = True
        if len(unsent) + len(self._unacked) + len(run) <= self.queue_max:
            if spool is not None:
                first = -1 if spilling else spool.append_many([m.data for m in run])
                if first < 0:
                    for outbound in run:
                        self._accept(outbound)
                    return
                for seq, outbound in enumerate(run, first):
                    outbound.seq = seq
            self.counters.received += len(run)
            unsent.extend(run)
            if not self._wake.is_set():
                self._wake.set()
            return
        for outbound in run:
            self._accept(outbound)

    def _accept(self, outbound: OutboundMessage) -> None:
        self.counters.received += 1
        overflow = self.overflow
        if overflow is not None:
            spool = overflow.spool
            seq = spool.append(outbound.data)
            if seq < 0:
                self._refuse(outbound, "spool_full", f"spool full ({spool.max_bytes} bytes)")
                return
            outbound.seq = seq
            if overflow.next_read >= 0 or len(self._unsent) + len(self._unacked) >= self.queue_max:
                overflow.spill_one(outbound)
                return
        elif len(self._unsent) + len(self._unacked) >= self.queue_max:
            self._refuse(outbound, "queue_full", f"queue full ({self.queue_max})")
            return
        self._unsent.append(outbound)
        if not self._wake.is_set():
            self._wake.set()

    def _refuse(self, message: OutboundMessage, code: str, why: str) -> None:
        """Counted and reported every time; logged at most once a second (with a count)."""
        counters = self.counters
        if code == "spool_full":
            counters.refused += 1
        else:
            counters.dropped += 1
        counters.failed += 1
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._refused_log_at < 1.0:
            return
        self.errors.add(code, f"envelope {message.envelope_id} not published: {why}")
        log.error(
            "%s: %d envelope(s) not published since the last report, e.g. %s",
            why,
            self._refused_unlogged,
            message.envelope_id,
            extra={
                "eventId": message.envelope_id,
                "channel": message.channel,
                "errorCode": code,
                "traceId": message.traceparent[3:35],
            },
        )
        self._refused_log_at = now
        self._refused_unlogged = 0

    # -- lifecycle ------------------------------------------------------------------

    async def prepare(self) -> None:
        """Open the spool. A spool that cannot be opened is reported and left out: the
        service then runs with memory only."""
        if self.overflow is not None and not await self.overflow.open():
            self.spool = self.overflow = None

    def start_spool(self) -> None:
        """The spool's writer alone: reading may start before the bus is connected."""
        if self.overflow is not None and self._flusher is None:
            self._flusher = asyncio.create_task(self.overflow.flush_loop(), name="spool-flush")

    def start(self) -> None:
        """The sender (the bus is connected) and the spool's writer."""
        self.start_spool()
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="pipeline-send"),
            asyncio.create_task(self._sweep_loop(), name="pipeline-ack-timeouts"),
        ]

    @property
    def depth(self) -> int:
        """Envelopes held to send: the window not yet sent plus what waits in the spool."""
        overflow = self.overflow
        return len(self._unsent) + (overflow.waiting if overflow is not None else 0)

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    def describe(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "inFlight": self.in_flight,
            "window": len(self._unsent) + len(self._unacked),
            "windowMax": self.queue_max,
            "retrying": self._failed_rounds > 0,
            "failedRounds": self._failed_rounds,
            "spool": self.spool.describe() if self.spool is not None else None,
            "deadLetters": self.dead_letters.describe() if self.dead_letters else None,
        }

    async def drain(self, timeout_s: float, *, in_flight_only: bool = False) -> int:
        """Wait until everything held is acknowledged (or timeout); returns what is left.

        ``in_flight_only`` (shutdown with a spool): stop sending first and wait only for the
        acks of what was already sent; the rest is safe in the spool for the next start.
        """
        deadline = time.monotonic() + timeout_s
        if in_flight_only and self._tasks:
            self._tasks[0].cancel()  # the sender
            await asyncio.gather(self._tasks[0], return_exceptions=True)
        while time.monotonic() < deadline:
            if in_flight_only:
                if not self._unacked or self._failure is not None:
                    break
            elif not self._held():
                break
            await asyncio.sleep(0.01)
        if self.dead_letters is not None:
            await self.dead_letters.wait(max(0.0, deadline - time.monotonic()))
        return self._held()

    def _held(self) -> int:
        return self.depth + self.in_flight

    async def stop(self) -> None:
        """Stop sending, then make the spool durable: what is unacknowledged stays in it
        (it was written ahead) and is sent first by the next start."""
        tasks = [*self._tasks, *([self._flusher] if self._flusher else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.dead_letters is not None:
            await self.dead_letters.stop()
        if self.overflow is not None:
            await self.overflow.close(self._frontier())

    # -- sending ----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        unsent, unacked, batches = self._unsent, self._unacked, self._batches
        publisher, overflow = self.publisher, self.overflow
        read_back_min = Overflow.read_back_min(self.queue_max)
        while True:
            if self._failure is not None:
                await self._go_back()
                continue
            if overflow is not None and overflow.next_read >= 0 and self._room() >= read_back_min:
                await overflow.read_back(unsent, self._room())
                if overflow.next_read < 0 and not self._wake.is_set():
                    self._wake.set()
                continue
            if not unsent or len(unacked) >= self.max_in_flight:
                self._wake.clear()
                await self._wake.wait()
                continue
            # The slice stays in ``unsent`` while it is being sent: the spool's frontier
            # must never pass an envelope that has no ack yet.
            count = min(len(unsent), self.max_in_flight - len(unacked), SEND_SLICE)
            chunk = list(islice(unsent, count))
            runs, error = await publisher.send_many(chunk)
            deadline = time.monotonic() + self.ack_timeout_s
            moved = 0
            for future, settles in runs:
                batch = self._open_batch
                if batch is not None and future is batch.future:
                    batch.count += settles
                else:
                    batch = self._open_batch = _Batch(future, deadline, settles)
                    batches.append(batch)
                    future.add_done_callback(self._on_settled)
                moved += settles
            unacked.extend(chunk if moved == count else chunk[:moved])
            if moved == len(unsent):
                unsent.clear()
            else:
                for _ in range(moved):
                    unsent.popleft()
            if error is not None:
                self._fail(error)
            await asyncio.sleep(0)

    def _on_settled(self, _: asyncio.Future[Any]) -> None:
        """Settle finished batches from the front, in order; a failure starts a go-back."""
        batches, unacked = self._batches, self._unacked
        acked = 0
        while batches:
            batch = batches[0]
            future = batch.future
            if not future.done():
                break
            if batch is self._open_batch:
                self._open_batch = None
            error = (
                BusError("no ack within the ack timeout")
                if future.cancelled()
                else future.exception()
            )
            if error is None:
                batches.popleft()
                now = time.monotonic()
                settled = [unacked.popleft() for _ in range(batch.count)]
                self.latency.record_since(now, [m.received_at for m in settled])
                observer = self.observer
                if observer is not None:
                    for message in settled:
                        observer(message, now, None)
                acked += batch.count
            elif not _retryable(error) and batch.count == 1:
                batches.popleft()
                self._reject(unacked.popleft(), error)
            else:
                self._fail(error)
                break
        if acked:
            self.counters.published += acked
            self._failed_rounds = 0
        if self.spool is not None:
            self.spool.ack_below(self._frontier())
        if not self._wake.is_set():
            self._wake.set()

    def _frontier(self) -> int:
        """The spool sequence of the oldest envelope not yet settled."""
        for held in (self._unacked, self._unsent):
            if held:
                return held[0].seq
        overflow = self.overflow
        if overflow is not None and overflow.next_read >= 0:
            return overflow.next_read
        return self.spool.next_seq if self.spool is not None else 0

    def _fail(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
            if not self._wake.is_set():
                self._wake.set()

    async def _go_back(self) -> None:
        """Pause, back off, then re-send every unacknowledged envelope from the oldest."""
        error = self._failure
        self._failed_rounds += 1
        rounds = self._failed_rounds
        unsent, unacked = self._unsent, self._unacked
        oldest = unacked[0] if unacked else (unsent[0] if unsent else None)
        retries = max(1, self.max_retries)
        delay = self._retry_backoff.delay_for(min(rounds, retries))
        extra = {"errorCode": "publish_retry"}
        if oldest is not None:
            extra.update(
                eventId=oldest.envelope_id,
                channel=oldest.channel,
                traceId=oldest.traceparent[3:35],
            )
        if rounds == 1:
            log.warning(
                "publish failed (%s): re-sending %d envelope(s) in order from %s in %.2fs",
                error,
                len(unacked) + len(unsent),
                oldest.envelope_id if oldest else "-",
                delay,
                extra=extra,
            )
        elif rounds % retries == 0:
            held = self._held()
            self.errors.add("publish_stalled", f"bus failing after {rounds} attempts: {error}")
            log.error(
                "bus still failing after %d attempts (%s): %d envelope(s) held (spool: %s), "
                "retrying every %.1fs at most",
                rounds,
                error,
                held,
                "yes" if self.spool is not None else "no, memory only",
                self.retry_max_s,
                extra={**extra, "errorCode": "publish_stalled"},
            )
        await asyncio.sleep(delay)
        # Whatever was acked meanwhile has been settled by _on_settled; the rest goes again.
        # The failed round's pending acks are given up (a driver frees what it holds for
        # them, e.g. nats-py's slots for outstanding acks).
        for batch in self._batches:
            if not batch.future.done():
                batch.future.cancel()
        self.counters.retries += len(unacked)
        unsent.extendleft(reversed(unacked))
        unacked.clear()
        self._batches.clear()
        self._open_batch = None
        self._failure = None

    def _reject(self, message: OutboundMessage, error: BaseException) -> None:
        """A permanent rejection: logged, counted, dead-lettered (when configured), never
        retried."""
        self.counters.failed += 1
        if self.observer is not None:
            self.observer(message, time.monotonic(), error)
        reason = f"{type(error).__name__}: {error}"
        self.errors.add("publish_failed", f"envelope {message.envelope_id}: {reason}")
        log.error(
            "publish failed for envelope %s (%s, channel %s): %s%s",
            message.envelope_id,
            message.type,
            message.channel,
            reason,
            "; dead-lettering it" if self.dead_letters is not None else "",
            extra={
                "eventId": message.envelope_id,
                "channel": message.channel,
                "errorCode": "publish_failed",
                "traceId": message.traceparent[3:35],
                "spanId": message.traceparent[36:52],
            },
        )
        if self.dead_letters is not None:
            self.dead_letters.submit(message, error, self._failed_rounds + 1)

    def _room(self) -> int:
        return self.queue_max - len(self._unsent) - len(self._unacked)

    async def _sweep_loop(self) -> None:
        """Acks that never come (a bus that vanished mid-publish) fail the round here."""
        batches = self._batches
        while True:
            await asyncio.sleep(0.25)
            if batches and self._failure is None:
                front = batches[0]
                if not front.future.done() and front.deadline <= time.monotonic():
                    self._fail(BusError(f"no ack within {self.ack_timeout_s:g}s"))
