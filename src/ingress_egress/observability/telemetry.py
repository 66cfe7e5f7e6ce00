"""OpenTelemetry wiring: providers from the ``OTEL_*`` settings, instruments over the
shared figures, and the per-message hook the pipeline calls when an envelope is settled.

Nothing is exported by default (``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` are
``none`` unless set, or ``otlp`` when an OTLP endpoint is given). With neither on, the
pipeline gets no hook at all and pays one ``is None`` test per message.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from ingress_egress.envelope import OutboundMessage
from ingress_egress.observability.metrics import (
    FIGURES,
    LATENCY_BOUNDS_S,
    LATENCY_DESCRIPTION,
    LATENCY_NAME,
    Figure,
    MetricsSource,
    bus_attributes,
)
from ingress_egress.observability.tracing import DeliveryTracer, PresetIds

log = logging.getLogger("ingress_egress.observability")

SERVICE = "ingress-egress"
SCOPE = "ingress_egress"

# The pipeline calls this once per settled envelope: (message, monotonic ack time, error).
DeliveryObserver = Callable[[OutboundMessage, float, BaseException | None], None]


def service_resource() -> Resource:
    """``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK) win."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: SERVICE}))
    return resource


class Telemetry:
    """Tracer and meter providers of one service (never the process-global ones)."""

    def __init__(
        self,
        *,
        span_processors: Iterable[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        resource: Resource | None = None,
    ) -> None:
        resource = resource or service_resource()
        processors = list(span_processors)
        self.ids = PresetIds()
        self.tracer_provider: TracerProvider | None = None
        if processors:
            self.tracer_provider = TracerProvider(resource=resource, id_generator=self.ids)
            for processor in processors:
                self.tracer_provider.add_span_processor(processor)
        self.meter_provider: MeterProvider | None = None
        if metric_readers:
            # No exemplars: the default filter looks up the current span on every record.
            self.meter_provider = MeterProvider(
                metric_readers=list(metric_readers),
                resource=resource,
                exemplar_filter=AlwaysOffExemplarFilter(),
            )
        self._histogram: Any = None
        self._histogram_attributes: dict[str, str] = {}
        self._tracer: DeliveryTracer | None = None

    @classmethod
    def from_settings(cls, traces: str, metrics: str) -> Telemetry:
        """``traces`` / ``metrics``: ``none``, ``otlp`` (OTLP/HTTP, configured by the
        standard ``OTEL_EXPORTER_OTLP_*`` variables) or ``console`` (stderr: stdout may
        carry envelopes)."""
        processors: list[SpanProcessor] = []
        if traces == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processors.append(BatchSpanProcessor(OTLPSpanExporter()))
        elif traces == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            processors.append(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        readers: list[MetricReader] = []
        if metrics == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif metrics == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr)))
        return cls(span_processors=processors, metric_readers=readers)

    @property
    def enabled(self) -> bool:
        return self.tracer_provider is not None or self.meter_provider is not None

    def bind(self, source: MetricsSource) -> DeliveryObserver | None:
        """Register the instruments over ``source``; return the pipeline's hook, or None
        when neither traces nor metrics are exported."""
        attributes = bus_attributes(source)
        if self.meter_provider is not None:
            meter = self.meter_provider.get_meter(SCOPE)
            for figure in FIGURES:
                callback = _callback(figure, source)
                if figure.kind == "counter":
                    meter.create_observable_counter(
                        figure.name, [callback], figure.unit, figure.description
                    )
                else:
                    meter.create_observable_gauge(
                        figure.name, [callback], figure.unit, figure.description
                    )
            self._histogram = meter.create_histogram(
                LATENCY_NAME,
                unit="s",
                description=LATENCY_DESCRIPTION,
                explicit_bucket_boundaries_advisory=LATENCY_BOUNDS_S,
            )
            self._histogram_attributes = attributes
        if self.tracer_provider is not None:
            self._tracer = DeliveryTracer(
                self.tracer_provider.get_tracer(SCOPE),
                self.ids,
                system=attributes["messaging.system"],
                destination=attributes["messaging.destination.name"],
            )
        if self._tracer is None and self._histogram is None:
            return None
        return self._observe

    def _observe(
        self, message: OutboundMessage, acked_at: float, error: BaseException | None
    ) -> None:
        if self._tracer is not None:
            self._tracer.record(message, acked_at, error)
        if error is None and self._histogram is not None:
            self._histogram.record(acked_at - message.received_at, self._histogram_attributes)

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is None:
                continue
            try:
                provider.shutdown()
            except Exception:  # an exporter that cannot flush must not block shutdown
                log.warning("telemetry shutdown failed", exc_info=True)


def _callback(figure: Figure, source: MetricsSource) -> Callable[[CallbackOptions], list[Any]]:
    def observe(_: CallbackOptions) -> list[Observation]:
        return [Observation(value, attributes) for attributes, value in figure.read(source)]

    return observe
