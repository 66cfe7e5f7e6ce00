"""What the service tells ops about itself: state, metrics, traces and logs.

* ``metrics``: every metric is defined once, as a read of the service's parts and of the
  status objects they write (``ingress_egress.status``: counters, error log, chat state);
  both the OpenTelemetry instruments and ``/metrics`` (Prometheus) read it, so they always
  show the same numbers and the hot path pays nothing for either.
* ``prometheus``: the ``/metrics`` rendering of those definitions.
* ``tracing``: one PRODUCER span per envelope, receipt -> bus ack, recorded at ack time
  with explicit start/end times; its trace id is the envelope ``traceId`` and its span id
  the one in the envelope's ``traceparent``. No span is created unless tracing is on.
* ``telemetry``: builds the OpenTelemetry providers from the ``OTEL_*`` settings (none by
  default) and the per-message hook the pipeline calls.
* ``logs``: JSON lines for Cloud Logging, secrets always redacted.

Import the module you need; this package imports nothing itself. The hot-path modules
write ``ingress_egress.status`` (below the components), never this package.
"""
