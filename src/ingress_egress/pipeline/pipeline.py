"""The pipeline: typed message -> envelope -> bounded queue -> bus, acks pipelined.

* ``submit`` is synchronous and never blocks the Twitch read loop.
* One sender task publishes in receipt order and keeps up to ``max_in_flight`` acks
  outstanding instead of awaiting each in turn.
* A failed ack is retried (tenacity, bounded exponential backoff with jitter) up to
  ``PUBLISH_MAX_RETRIES`` times; then it is logged with the envelope id and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from functools import partial
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from ingress_egress.bus.base import BusError, OutboundMessage, Publisher
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.pipeline.latency import LatencyHistogram
from ingress_egress.pipeline.outbound import to_outbound
from ingress_egress.status import Counters, ErrorLog
from ingress_egress.twitch.messages import TwitchMessage

log = logging.getLogger("ingress_egress.pipeline")


class DeliveryObserver(Protocol):
    """Told once per settled envelope: (message, monotonic settle time, error or None)."""

    def __call__(
        self, message: OutboundMessage, settled_at: float, error: BaseException | None, /
    ) -> None: ...


def _retryable(error: BaseException) -> bool:
    return not (isinstance(error, BusError) and error.permanent)


class Pipeline:
    def __init__(
        self,
        builder: EnvelopeBuilder,
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
    ) -> None:
        self.builder = builder
        self.publisher = publisher
        self.counters = counters
        self.errors = errors
        self.max_retries = max_retries
        self.max_in_flight = max_in_flight
        self.queue_max = queue_max
        self.ack_timeout_s = ack_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.latency = LatencyHistogram()
        # Telemetry's per-message hook (spans, OTel histogram); None unless one is exported.
        self.observer: DeliveryObserver | None = None
        self._ids = RandomIds()
        self._queue: deque[OutboundMessage] = deque()
        self._has_work = asyncio.Event()
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._in_flight: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._pending_acks = 0
        # Drivers that confirm several messages with one ack return one future for all of
        # them; consecutive messages sharing a future share one callback (one per batch).
        self._open_future: asyncio.Future[Any] | None = None
        self._open_batch: list[OutboundMessage] = []
        self._retrying: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # -- the read loop's side -------------------------------------------------------

    def submit(self, message: TwitchMessage, received_at: float) -> None:
        envelope = self.builder.build(message, received_at)
        if envelope is None:
            return
        self.counters.received += 1
        if len(self._queue) >= self.queue_max:
            self.counters.dropped += 1
            self.counters.failed += 1
            self.errors.add("queue_full", f"envelope {envelope['id']} dropped: queue full")
            log.error(
                "queue full (%d): envelope %s not published",
                self.queue_max,
                envelope["id"],
                extra={
                    "eventId": envelope["id"],
                    "channel": envelope["source"]["channel"],
                    "errorCode": "queue_full",
                    "traceId": envelope["traceId"],
                },
            )
            return
        self._queue.append(to_outbound(envelope, self._ids.span_id(), time.monotonic()))
        self._has_work.set()

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_loop(), name="pipeline-send"),
            asyncio.create_task(self._sweep_loop(), name="pipeline-ack-timeouts"),
        ]

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        return self._pending_acks + len(self._retrying)

    async def drain(self, timeout_s: float) -> int:
        """Wait until everything queued is acknowledged (or failed); returns what is left."""
        deadline = time.monotonic() + timeout_s
        while (self._queue or self.in_flight) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return len(self._queue) + self.in_flight

    async def stop(self) -> None:
        for task in [*self._tasks, *self._retrying]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._retrying, return_exceptions=True)

    # -- sending ----------------------------------------------------------------------

    async def _send_loop(self) -> None:
        queue = self._queue
        sent = 0
        while True:
            if not queue:
                self._has_work.clear()
                await self._has_work.wait()
                continue
            if self._pending_acks >= self.max_in_flight:
                self._capacity.clear()
                await self._capacity.wait()
                continue
            message = queue.popleft()
            try:
                future = await self.publisher.send(message)
            except Exception as error:
                self._retry_later(message, error)
                continue
            self._pending_acks += 1
            if future is self._open_future:
                self._open_batch.append(message)
            else:
                batch = [message]
                self._open_future, self._open_batch = future, batch
                self._in_flight.append((time.monotonic() + self.ack_timeout_s, future))
                future.add_done_callback(partial(self._acked, batch))
            sent += 1
            if sent % 256 == 0:
                await asyncio.sleep(0)  # a driver that never suspends must not starve reads

    def _acked(self, batch: list[OutboundMessage], future: asyncio.Future[Any]) -> None:
        if future is self._open_future:
            self._open_future = None
        self._pending_acks -= len(batch)
        if self._pending_acks < self.max_in_flight:
            self._capacity.set()
        error: BaseException | None
        if future.cancelled():
            error = BusError("no ack within the ack timeout")
        else:
            error = future.exception()
        if error is not None:
            for message in batch:
                self._retry_later(message, error)
            return
        self.counters.published += len(batch)
        now = time.monotonic()
        record = self.latency.record
        for message in batch:
            record(now - message.received_at)
        if self.observer is not None:
            for message in batch:
                self.observer(message, now, None)

    async def _sweep_loop(self) -> None:
        """Acks that never come (a bus that vanished mid-publish) are timed out here."""
        in_flight = self._in_flight
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            while in_flight and (in_flight[0][1].done() or in_flight[0][0] <= now):
                _, future = in_flight.popleft()
                if not future.done():
                    future.cancel()

    # -- retries ----------------------------------------------------------------------

    def _retry_later(self, message: OutboundMessage, error: BaseException) -> None:
        if self.max_retries <= 0 or not _retryable(error):
            self._give_up(message, error)
            return
        task = asyncio.ensure_future(self._retry(message, error))
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    async def _retry(self, message: OutboundMessage, first_error: BaseException) -> None:
        log.warning(
            "publish of envelope %s failed (%s); retrying",
            message.envelope_id,
            first_error,
            extra={
                "eventId": message.envelope_id,
                "channel": message.channel,
                "errorCode": "publish_retry",
                "traceId": message.traceparent[3:35],
                "spanId": message.traceparent[36:52],
            },
        )
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries),
            wait=wait_exponential_jitter(
                multiplier=self.retry_initial_s, max=self.retry_max_s, jitter=self.retry_initial_s
            ),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        await asyncio.sleep(self.retry_initial_s)  # tenacity waits only between attempts
        try:
            async for attempt in retrying:
                with attempt:
                    self.counters.retries += 1
                    future = await self.publisher.send(message)
                    await asyncio.wait_for(future, self.ack_timeout_s)
        except (Exception, RetryError) as error:
            self._give_up(message, error)
            return
        self.counters.published += 1
        now = time.monotonic()
        self.latency.record(now - message.received_at)
        if self.observer is not None:
            self.observer(message, now, None)

    def _give_up(self, message: OutboundMessage, error: BaseException) -> None:
        self.counters.failed += 1
        reason = f"{type(error).__name__}: {error}"
        self.errors.add("publish_failed", f"envelope {message.envelope_id}: {reason}")
        log.error(
            "publish failed for envelope %s (%s, channel %s): %s",
            message.envelope_id,
            message.type,
            message.channel,
            reason,
            extra={
                "eventId": message.envelope_id,
                "channel": message.channel,
                "errorCode": "publish_failed",
                "traceId": message.traceparent[3:35],
                "spanId": message.traceparent[36:52],
            },
        )
        if self.observer is not None:
            self.observer(message, time.monotonic(), error)
