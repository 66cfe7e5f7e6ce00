"""One PRODUCER span per envelope, receipt -> bus ack, named by the envelope's own ids.

The span is recorded when the outcome is known (ack or give-up) with explicit start and
end times, so nothing runs per message while it is in the queue. Its trace id is the
envelope ``traceId`` and its span id the one in the envelope's ``traceparent``: a consumer
that continues the bus message's trace hangs off this very span.

The SDK draws ids from the provider's ``IdGenerator``; ``PresetIds`` hands out the pair set
just before ``start_span`` (one event loop, so nothing can interleave) and random ids
otherwise.
"""

from __future__ import annotations

import time

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from ingress_egress.envelope import OutboundMessage


class PresetIds(IdGenerator):
    def __init__(self) -> None:
        self._random = RandomIdGenerator()
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        value, self.trace_id = self.trace_id, 0
        return value or self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        value, self.span_id = self.span_id, 0
        return value or self._random.generate_span_id()


class DeliveryTracer:
    def __init__(
        self,
        tracer: Tracer,
        ids: PresetIds,
        *,
        system: str,
        destination: str,
    ) -> None:
        self._tracer = tracer
        self._ids = ids
        self._name = f"send {destination}"
        self._system = system
        self._destination = destination
        # monotonic -> epoch nanoseconds (receipt times are monotonic)
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def record(
        self, message: OutboundMessage, acked_at: float, error: BaseException | None
    ) -> None:
        traceparent = message.traceparent
        ids = self._ids
        ids.trace_id = int(traceparent[3:35], 16)
        ids.span_id = int(traceparent[36:52], 16)
        offset = self._offset_ns
        span = self._tracer.start_span(
            self._name,
            kind=SpanKind.PRODUCER,
            start_time=int(message.received_at * 1e9) + offset,
            attributes={
                "messaging.system": self._system,
                "messaging.destination.name": self._destination,
                "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.message.id": message.envelope_id,
                "messaging.message.body.size": len(message.data),
                "twitch.channel": message.channel,
                "envelope.type": message.type,
            },
            record_exception=False,
            set_status_on_exception=False,
        )
        ids.trace_id = ids.span_id = 0
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end(end_time=int(acked_at * 1e9) + offset)
