"""Envelopes the bus rejected for good: a dead-letter record, then a failure status.

A permanent rejection (too large, invalid) cannot be fixed by retrying. The envelope goes to
``${BUS_PREFIX}internal.ingress.dlq.v1`` inside a small record saying why, and a failure
status goes to ``${BUS_PREFIX}internal.finalizer.v1`` so the platform's finalizer learns the
event will never arrive. Both shapes are documented in docs/delivery.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from tenacity import retry_if_exception, stop_after_attempt

from ingress_egress.bus.base import BusError, Publisher
from ingress_egress.envelope import OutboundMessage
from ingress_egress.retry import retrying
from ingress_egress.status import Counters, ErrorLog

log = logging.getLogger("ingress_egress.pipeline.dead_letters")

DLQ_RECORD_TYPE = "internal.ingress.dlq.v1"
FAILURE_STATUS_TYPE = "internal.finalizer.status.v1"
STAGE = "ingress-egress"
# The original envelope is embedded whole up to this size; a larger one (the usual reason
# for a rejection) is described by its size and first characters instead, so that the
# dead letter itself is never too large to publish.
EMBED_MAX_BYTES = 256 * 1024
PREVIEW_CHARS = 2048


def _iso(epoch: float) -> str:
    whole = int(epoch)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((epoch - whole) * 1000):03d}Z"


def dead_letter_record(
    message: OutboundMessage,
    reason: str,
    attempts: int,
    destination: str,
    now: float,
    *,
    embed: bool = True,
) -> bytes:
    """The DLQ record (JSON), the original envelope embedded as-is when small enough."""
    fields: dict[str, Any] = {
        "type": DLQ_RECORD_TYPE,
        "id": message.envelope_id,
        "reason": reason,
        "permanent": True,
        "attempts": attempts,
        "deadLetteredAt": _iso(now),
        "destination": destination,
        "eventType": message.type,
        "messageId": message.dedup_id,
        "traceId": message.traceparent[3:35],
        "channel": message.channel,
        "envelopeBytes": len(message.data),
    }
    if embed and len(message.data) <= EMBED_MAX_BYTES:
        head = orjson.dumps(fields)
        return head[:-1] + b',"envelope":' + bytes(message.data) + b"}"
    fields["envelope"] = None
    fields["envelopePreview"] = bytes(message.data[: PREVIEW_CHARS * 4]).decode("utf-8", "replace")[
        :PREVIEW_CHARS
    ]
    return orjson.dumps(fields)


def failure_status(
    message: OutboundMessage, reason: str, dead_letter: str | None, now: float
) -> bytes:
    """What the finalizer is told about an envelope that will never reach the bus."""
    return orjson.dumps(
        {
            "type": FAILURE_STATUS_TYPE,
            "id": f"{message.envelope_id}:{STAGE}:failed",
            "status": "failed",
            "stage": STAGE,
            "envelopeId": message.envelope_id,
            "eventType": message.type,
            "messageId": message.dedup_id,
            "traceId": message.traceparent[3:35],
            "channel": message.channel,
            "reason": reason,
            "deadLetter": dead_letter,
            "timestamp": _iso(now),
        }
    )


class DeadLetters:
    """Publishes dead letters and failure statuses off the sender's path (own tasks)."""

    def __init__(
        self,
        publisher: Publisher,
        counters: Counters,
        errors: ErrorLog,
        *,
        destination: str,
        dlq_subject: str,
        finalizer_subject: str,
        max_retries: int = 5,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
    ) -> None:
        self.publisher = publisher
        self.counters = counters
        self.errors = errors
        self.destination = destination
        self.dlq_subject = dlq_subject
        self.finalizer_subject = finalizer_subject
        self.max_retries = max(1, max_retries)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.finalizer_error = ""
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, message: OutboundMessage, error: BaseException, attempts: int) -> None:
        task = asyncio.ensure_future(self._handle(message, f"{error}", attempts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def wait(self, timeout_s: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, message: OutboundMessage, reason: str, attempts: int) -> None:
        now = time.time()
        extra = {
            "eventId": message.envelope_id,
            "channel": message.channel,
            "traceId": message.traceparent[3:35],
        }
        dead_letter: str | None = self.dlq_subject
        try:
            try:
                record = dead_letter_record(message, reason, attempts, self.destination, now)
                await self._publish(self.dlq_subject, record, f"dlq:{message.dedup_id}")
            except BusError as error:
                if not error.permanent:
                    raise
                # Too large with the envelope inside (the usual reason): describe it instead.
                record = dead_letter_record(
                    message, reason, attempts, self.destination, now, embed=False
                )
                await self._publish(self.dlq_subject, record, f"dlq:{message.dedup_id}")
        except Exception as error:
            dead_letter = None
            self.counters.dead_letter_failed += 1
            self.errors.add(
                "dead_letter_failed", f"envelope {message.envelope_id}: {reason}; DLQ: {error}"
            )
            log.error(
                "envelope %s rejected (%s) and its dead letter could not be published: %s",
                message.envelope_id,
                reason,
                error,
                extra={**extra, "errorCode": "dead_letter_failed"},
            )
        else:
            self.counters.dead_lettered += 1
            log.info(
                "envelope %s rejected by the bus (%s): sent to %s",
                message.envelope_id,
                reason,
                self.dlq_subject,
                extra={**extra, "errorCode": "dead_lettered"},
            )
        status = failure_status(message, reason, dead_letter, now)
        try:
            await self._publish(
                self.finalizer_subject, status, f"failed:{message.dedup_id}", FAILURE_STATUS_TYPE
            )
        except Exception as error:
            self.counters.finalizer_unreachable += 1
            self.finalizer_error = str(error)
            log.warning(
                "finalizer unreachable (%s): failure status of envelope %s not sent",
                error,
                message.envelope_id,
                extra={**extra, "errorCode": "finalizer_unreachable"},
            )
        else:
            self.counters.finalizer_statuses += 1

    async def _publish(
        self, subject: str, data: bytes, message_id: str, event_type: str = DLQ_RECORD_TYPE
    ) -> None:
        """Transient failures are retried (bounded); an unreachable destination is not."""
        attempts = retrying(
            self.retry_initial_s,
            self.retry_max_s,
            stop=stop_after_attempt(self.max_retries),
            retry=retry_if_exception(
                lambda error: not (isinstance(error, BusError) and error.permanent)
            ),
        )
        async for attempt in attempts:
            with attempt:
                await self.publisher.publish_to(
                    subject, data, message_id=message_id, event_type=event_type
                )

    def describe(self) -> dict[str, Any]:
        return {
            "subject": self.dlq_subject,
            "finalizer": self.finalizer_subject,
            "pending": self.pending,
            "finalizerLastError": self.finalizer_error,
        }
