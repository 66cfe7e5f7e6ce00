"""Metrics, traces and the figures they share (logs are ``ingress_egress.logs``).

* ``figures``: every metric is defined once, as a read of the service's plain counters and
  state; both the OpenTelemetry instruments and ``/metrics`` (Prometheus) read it, so they
  always show the same numbers and the hot path pays nothing for either.
* ``tracing``: one PRODUCER span per envelope, receipt -> bus ack, recorded at ack time
  with explicit start/end times; its trace id is the envelope ``traceId`` and its span id
  the one in the envelope's ``traceparent``. No span is created unless tracing is on.
* ``telemetry``: builds the OpenTelemetry providers from the ``OTEL_*`` settings (none by
  default) and the per-message hook the pipeline calls.
"""

from ingress_egress.observability.figures import LATENCY_BOUNDS_S, MetricsSource
from ingress_egress.observability.prometheus import build_registry
from ingress_egress.observability.telemetry import Telemetry

__all__ = ["LATENCY_BOUNDS_S", "MetricsSource", "Telemetry", "build_registry"]
