"""The egress series at ``/metrics`` (and through OpenTelemetry): a real scrape of the text
format from the registry the service builds, over a filled ``SenderStats``, a real
``EchoWatch`` that counted an unseen send and a real ``SoloLease``; none of them while
egress is off."""

from __future__ import annotations

import asyncio

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import generate_latest

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.egress.echo import EchoWatch
from ingress_egress.egress.lease import SoloLease
from ingress_egress.egress.sender_stats import SenderStats
from ingress_egress.observability.metrics import EgressMetrics, MetricsSource
from ingress_egress.observability.prometheus import build_registry
from ingress_egress.observability.telemetry import Telemetry
from ingress_egress.pipeline import Pipeline
from ingress_egress.status import ChatState, Counters, ErrorLog
from tests.support.scrape import EGRESS_METRICS, missing_from_scrape, samples
from tests.support.service import eventually


def metrics_source(egress: EgressMetrics | None) -> MetricsSource:
    counters = Counters()
    publisher = MemoryPublisher()
    return MetricsSource(
        counters=counters,
        chat=ChatState("irc", "justinfan1", ("one",)),
        pipeline=Pipeline(publisher, counters, ErrorLog()),
        publisher=publisher,
        credentials=None,
        cluster=None,
        destination="internal.ingress.v1",
        readiness=lambda: [],
        recent_loop_lag_s=lambda: 0.0,
        connections=lambda: [],
        egress=egress,
    )


def scrape(source: MetricsSource) -> dict[str, list[tuple[dict[str, str], float]]]:
    return samples(generate_latest(build_registry(source, process=False)).decode())


def filled_stats() -> SenderStats:
    stats = SenderStats()
    for _ in range(3):
        stats.result("sent", None)
    stats.result("dropped", "msg_banned")
    stats.result("dropped", "msg_banned")
    stats.result("expired", "too_old")
    stats.dead_lettered = 2
    for seconds in (0.07, 0.3, 200.0):  # the last beyond the largest bound: +Inf only
        stats.latency.observe(seconds)
    return stats


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def one_unseen_send() -> EchoWatch:
    clock = FakeClock()
    echo = EchoWatch(timeout_ms=10_000, channels=("one",), clock=clock)
    assert echo.expect("id-seen", "one") and echo.expect("id-lost", "one")
    assert echo.seen("id-seen")
    clock.now += 10.5
    assert [u.message_id for u in echo.sweep()] == ["id-lost"]
    return echo


def value(
    scraped: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    found = [v for got, v in scraped[name] if got == labels]
    assert len(found) == 1, (name, labels, scraped.get(name))
    return found[0]


async def test_the_egress_series_read_the_sender_the_echo_watch_and_the_lease() -> None:
    stats = filled_stats()
    echo = one_unseen_send()
    lease = SoloLease("member-a")
    held = asyncio.create_task(lease.run())
    await eventually(lease.may_send, what="the solo lease")
    pending = ["c1", "c2", "c3", "c4"]
    egress = EgressMetrics(
        stats=stats,
        backlog=lambda: len(pending),
        unseen=lambda: echo.unseen,
        lease_held=lease.may_send,
        destination_blocked=lambda: bool(stats.last_missing_destination),
    )
    source = metrics_source(egress)
    scraped = scrape(source)

    assert missing_from_scrape(
        generate_latest(build_registry(source)).decode(), EGRESS_METRICS
    ) == (set())
    results = {
        (labels["status"], labels["reason"]): count
        for labels, count in scraped["ingress_egress_results_total"]
    }
    assert results == {("sent", ""): 3, ("dropped", "msg_banned"): 2, ("expired", "too_old"): 1}
    assert value(scraped, "ingress_egress_backlog") == 4
    assert value(scraped, "ingress_egress_unseen_total") == 1
    assert value(scraped, "ingress_egress_dead_letters_total") == 2
    assert value(scraped, "ingress_egress_destination_blocked") == 0
    assert value(scraped, "ingress_egress_lease_held") == 1
    buckets = {
        labels["le"]: count for labels, count in scraped["ingress_egress_latency_seconds_bucket"]
    }
    assert (buckets["0.05"], buckets["0.1"], buckets["0.5"], buckets["120.0"]) == (0, 1, 2, 2)
    assert buckets["+Inf"] == value(scraped, "ingress_egress_latency_seconds_count") == 3
    assert abs(value(scraped, "ingress_egress_latency_seconds_sum") - 200.37) < 1e-9

    # The next scrape follows the parts' state: a blocked destination, the lease given up,
    # the backlog drained, one more result.
    stats.last_missing_destination = "internal.finalizer.v1"
    pending.clear()
    stats.result("failed", "not_connected")
    await lease.leave()
    await held
    later = scrape(source)
    assert value(later, "ingress_egress_destination_blocked") == 1
    assert value(later, "ingress_egress_lease_held") == 0
    assert value(later, "ingress_egress_backlog") == 0
    assert (
        value(later, "ingress_egress_results_total", status="failed", reason="not_connected") == 1
    )


def test_before_any_result_the_sent_series_exists_at_zero() -> None:
    egress = EgressMetrics(
        stats=SenderStats(),
        backlog=lambda: 0,
        unseen=lambda: 0,
        lease_held=lambda: False,
        destination_blocked=lambda: False,
    )
    scraped = scrape(metrics_source(egress))
    assert scraped["ingress_egress_results_total"] == [({"status": "sent", "reason": ""}, 0.0)]
    assert value(scraped, "ingress_egress_latency_seconds_count") == 0


def test_no_egress_series_while_egress_is_off() -> None:
    text = generate_latest(build_registry(metrics_source(None), process=False)).decode()
    assert missing_from_scrape(text, EGRESS_METRICS) == EGRESS_METRICS
    assert not [name for name in samples(text) if name.startswith("ingress_egress_")]
    assert "ingress_queue_depth" in samples(text)  # the rest is there


def test_opentelemetry_reads_the_same_egress_figures() -> None:
    stats = filled_stats()
    egress = EgressMetrics(
        stats=stats,
        backlog=lambda: 7,
        unseen=lambda: 1,
        lease_held=lambda: True,
        destination_blocked=lambda: True,
    )
    reader = InMemoryMetricReader()
    telemetry = Telemetry(metric_readers=[reader])
    try:
        telemetry.bind(metrics_source(egress))
        points: dict[str, list[tuple[dict[str, object], float]]] = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points[metric.name] = [
                        (dict(p.attributes or {}), p.value) for p in metric.data.data_points
                    ]
    finally:
        telemetry.shutdown()
    assert ({"status": "dropped", "reason": "msg_banned"}, 2) in points["ingress.egress.results"]
    assert points["ingress.egress.backlog"] == [({}, 7)]
    assert points["ingress.egress.unseen"] == [({}, 1)]
    assert points["ingress.egress.dead_letters"] == [({}, 2)]
    assert points["ingress.egress.destination_blocked"] == [({}, 1)]
    assert points["ingress.egress.lease_held"] == [({}, 1)]
