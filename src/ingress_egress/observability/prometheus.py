"""``/metrics``: the shared figures rendered in the Prometheus text format at scrape time.

A custom collector reads the service's counters when Prometheus asks, so serving metrics
costs the hot path nothing. Each service gets its own registry (no process-global state).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ingress_egress.observability.metrics import (
    EGRESS_LATENCY_DESCRIPTION,
    EGRESS_LATENCY_NAME,
    FIGURES,
    LATENCY_DESCRIPTION,
    LATENCY_NAME,
    EgressMetrics,
    MetricsSource,
    bus_attributes,
    latency_buckets,
)


def prometheus_name(name: str) -> str:
    return name.replace(".", "_")


def _labels(attributes: dict[str, str]) -> dict[str, str]:
    return {prometheus_name(key): value for key, value in attributes.items()}


class FiguresCollector(Collector):
    def __init__(self, source: MetricsSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        source = self.source
        for figure in FIGURES:
            name = prometheus_name(figure.name)
            points = figure.read(source)
            keys = sorted({prometheus_name(k) for attributes, _ in points for k in attributes})
            family: CounterMetricFamily | GaugeMetricFamily
            if figure.kind == "counter":
                family = CounterMetricFamily(name, figure.description, labels=keys)
            else:
                family = GaugeMetricFamily(name, figure.description, labels=keys)
            for attributes, value in points:
                labels = _labels(attributes)
                family.add_metric([labels.get(k, "") for k in keys], value)
            yield family
        histogram = source.pipeline.latency
        labels = _labels(bus_attributes(source))
        family_h = HistogramMetricFamily(
            prometheus_name(LATENCY_NAME) + "_seconds", LATENCY_DESCRIPTION, labels=list(labels)
        )
        family_h.add_metric(
            list(labels.values()),
            buckets=[(_le(bound), count) for bound, count in latency_buckets(histogram)],
            sum_value=histogram.total_s,
        )
        yield family_h
        if source.egress is not None:
            yield _egress_latency(source.egress)


def _egress_latency(egress: EgressMetrics) -> Metric:
    """The sender's own cumulative buckets, as they are (seconds; see sender_stats)."""
    latency = egress.stats.latency
    family = HistogramMetricFamily(
        prometheus_name(EGRESS_LATENCY_NAME) + "_seconds", EGRESS_LATENCY_DESCRIPTION, labels=[]
    )
    family.add_metric(
        [],
        buckets=[(_le(bound), count) for bound, count in latency.cumulative()],
        sum_value=latency.sum_s,
    )
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def build_registry(source: MetricsSource, *, process: bool = True) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(source))
    if process:
        ProcessCollector(registry=registry)
    return registry
