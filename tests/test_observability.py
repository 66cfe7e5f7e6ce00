"""Traces, metrics and /metrics against the real service and the Twitch simulator, with
OpenTelemetry's in-memory exporter and reader; the debug route's detail and its token."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from ingress_egress.bus.base import BusError
from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings
from ingress_egress.envelope import OutboundMessage
from ingress_egress.http import build_app
from ingress_egress.observability.metrics import LATENCY_BOUNDS_S
from ingress_egress.observability.telemetry import Telemetry
from ingress_egress.service import Service
from ingress_egress.simulator import ChatSimulator
from tests.support.service import eventually, get, running, settings_for, wait_status

pytestmark = pytest.mark.timeout(120)
BASE = Settings.defaults(message_bus_driver="memory")


def otel_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def prometheus_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def point_value(points: list[Any], **attributes: str) -> float:
    matching = [p for p in points if dict(p.attributes) == attributes]
    assert len(matching) == 1, (attributes, [dict(p.attributes) for p in points])
    return matching[0].value


async def test_spans_metrics_and_prometheus_agree_with_the_service() -> None:
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    telemetry = Telemetry(span_processors=[SimpleSpanProcessor(exporter)], metric_readers=[reader])
    async with ChatSimulator(count=120, rate=2000) as sim:
        publisher = MemoryPublisher()
        settings = settings_for(BASE, sim.port, ("one", "two"))
        async with running(settings, publisher=publisher, telemetry=telemetry) as service:
            await wait_status(service, "/readyz", 200)
            assert await sim.wait_sent(120, timeout=30)
            await eventually(lambda: service.counters.published >= 122, what="publishes")
            await eventually(lambda: service.pipeline.in_flight == 0, what="acks")
            points = otel_points(reader)
            scraped = prometheus_samples((await get(service, "/metrics")).text)
            debug = await wait_status(service, "/_debug/twitch", 200)
            published = service.counters.published
            received = service.counters.received

    # One span per published envelope, named by the ids the envelope carries on the bus.
    spans = exporter.get_finished_spans()
    assert len(spans) == published == len(publisher.messages)
    by_span_id = {span.context.span_id: span for span in spans}
    for message in publisher.messages:
        _, trace_hex, span_hex, _ = message.traceparent.split("-")
        envelope = orjson.loads(message.data)
        assert envelope["traceId"] == trace_hex
        span = by_span_id[int(span_hex, 16)]
        assert span.context.trace_id == int(trace_hex, 16)
        assert span.parent is None
        assert span.kind is SpanKind.PRODUCER
        assert span.name == "send internal.ingress.v1"
        assert span.attributes["messaging.message.id"] == envelope["id"]
        assert span.attributes["messaging.destination.name"] == "internal.ingress.v1"
        assert span.attributes["twitch.channel"] == message.channel
        assert span.start_time <= span.end_time
        assert span.status.status_code is StatusCode.UNSET

    # OpenTelemetry metrics: the service's own figures.
    bus = {
        "messaging.system": "memory",
        "messaging.destination.name": "internal.ingress.v1",
        "messaging.operation.name": "send",
    }
    twitch = {"messaging.system": "twitch_irc", "messaging.operation.name": "receive"}
    assert point_value(points["messaging.client.consumed.messages"], **twitch) == received
    assert point_value(points["messaging.client.sent.messages"], **bus) == published
    assert (
        point_value(points["messaging.client.sent.messages"], **bus, **{"error.type": "queue_full"})
        == 0
    )
    assert point_value(points["ingress.twitch.connected"]) == 1
    assert point_value(points["ingress.twitch.channels.joined"]) == 2
    assert point_value(points["ingress.queue.depth"]) == 0
    (histogram,) = points["ingress.delivery.duration"]
    assert histogram.count == published
    assert tuple(histogram.explicit_bounds) == LATENCY_BOUNDS_S

    # /metrics: the same figures in the Prometheus format.
    labels = frozenset((k.replace(".", "_"), v) for k, v in bus.items())
    twitch_labels = frozenset((k.replace(".", "_"), v) for k, v in twitch.items())
    assert scraped[("messaging_client_consumed_messages_total", twitch_labels)] == received
    # (one label set per family: an empty error_type is PromQL's "absent")
    sent_ok = labels | {("error_type", "")}
    assert scraped[("messaging_client_sent_messages_total", sent_ok)] == published
    queue_full = labels | {("error_type", "queue_full")}
    assert scraped[("messaging_client_sent_messages_total", queue_full)] == 0
    assert scraped[("ingress_twitch_connected", frozenset())] == 1
    assert scraped[("ingress_twitch_channels_joined", frozenset())] == 2
    assert scraped[("ingress_delivery_duration_seconds_count", labels)] == published
    inf = labels | {("le", "+Inf")}
    assert scraped[("ingress_delivery_duration_seconds_bucket", inf)] == published
    # Bucket by bucket, the Prometheus histogram and the OTel one agree.
    cumulative = 0
    for bound, count in zip(LATENCY_BOUNDS_S, histogram.bucket_counts, strict=False):
        cumulative += count
        key = ("ingress_delivery_duration_seconds_bucket", labels | {("le", repr(bound))})
        assert scraped[key] == cumulative, bound

    # /_debug/twitch: per-connection detail.
    (connection,) = debug["connections"]
    assert connection["endpoint"] == f"irc://127.0.0.1:{sim.port}"
    assert connection["nick"] == "anonymous"
    assert connection["connected"] is True
    assert connection["connectedSince"].endswith("Z")
    assert connection["lastMessageAgeSeconds"] is not None
    assert connection["lastMessageAgeSeconds"] >= 0
    assert debug["recentErrors"] == []


class _RejectingPublisher(MemoryPublisher):
    async def send(self, message: OutboundMessage) -> asyncio.Future[Any]:
        raise BusError("rejected by test", permanent=True)


async def test_a_failed_publish_is_an_error_span_a_failed_count_and_a_traced_log(caplog) -> None:
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    telemetry = Telemetry(span_processors=[SimpleSpanProcessor(exporter)], metric_readers=[reader])
    async with ChatSimulator(count=5, rate=1000) as sim:
        settings = settings_for(BASE, sim.port, ("one",))
        publisher = _RejectingPublisher()
        async with running(settings, publisher=publisher, telemetry=telemetry) as service:
            assert await sim.wait_sent(5, timeout=30)
            await eventually(lambda: service.counters.failed >= 6, what="give-ups")
            points = otel_points(reader)
            failed = service.counters.failed
    spans = exporter.get_finished_spans()
    assert len(spans) == failed
    assert all(span.status.status_code is StatusCode.ERROR for span in spans)
    assert {span.attributes["error.type"] for span in spans} == {"BusError"}
    sent = points["messaging.client.sent.messages"]
    failures = [p for p in sent if p.attributes.get("error.type") == "publish_failed"]
    assert failures[0].value == failed
    records = [r for r in caplog.records if getattr(r, "errorCode", None) == "publish_failed"]
    assert records
    trace_ids = {format(span.context.trace_id, "032x") for span in spans}
    assert {r.traceId for r in records} <= trace_ids
    assert {r.eventId for r in records} == {
        span.attributes["messaging.message.id"] for span in spans
    }


async def test_telemetry_is_off_by_default_and_the_pipeline_gets_no_hook() -> None:
    service = Service(BASE, publisher=MemoryPublisher())
    assert not service.telemetry.enabled
    assert service.pipeline.observer is None


def test_otel_variables_choose_exporters() -> None:
    assert Settings.from_env({}).telemetry.traces_exporter == "none"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert Settings.from_env(env).telemetry.traces_exporter == "otlp"
    assert Settings.from_env(env).telemetry.metrics_exporter == "otlp"
    only_traces = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}
    assert Settings.from_env(only_traces).telemetry.traces_exporter == "otlp"
    assert Settings.from_env(only_traces).telemetry.metrics_exporter == "none"
    disabled = {**env, "OTEL_SDK_DISABLED": "true"}
    assert Settings.from_env(disabled).telemetry.metrics_exporter == "none"
    explicit = {**env, "OTEL_METRICS_EXPORTER": "none"}
    assert Settings.from_env(explicit).telemetry.metrics_exporter == "none"
    telemetry = Telemetry.from_settings("otlp", "otlp")
    try:
        assert telemetry.tracer_provider is not None and telemetry.meter_provider is not None
    finally:
        telemetry.shutdown()


class _View:
    def readiness(self) -> list[str]:
        return []

    def debug_snapshot(self) -> dict:
        return {"connected": True}

    def loop_lag_s(self) -> float:
        return 0.0


async def test_debug_route_needs_the_bearer_token_when_one_is_set() -> None:
    token = "debug-token-0123456789"
    app = build_app(_View(), debug_token=token)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        missing = await client.get("/_debug/twitch")
        wrong = await client.get("/_debug/twitch", headers={"Authorization": "Bearer nope"})
        basic = await client.get("/_debug/twitch", headers={"Authorization": f"Basic {token}"})
        right = await client.get("/_debug/twitch", headers={"Authorization": f"Bearer {token}"})
        health = await client.get("/healthz")
    assert missing.status_code == wrong.status_code == basic.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert token not in missing.text + wrong.text
    assert right.status_code == 200 and right.json() == {"connected": True}
    assert health.status_code == 200
    open_app = build_app(_View())
    transport = httpx.ASGITransport(app=open_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/_debug/twitch")).status_code == 200
