"""The service's metrics, defined once over its plain counters and state.

Names follow the OpenTelemetry messaging semantic conventions where one fits
(``messaging.client.consumed.messages``, ``messaging.client.sent.messages`` with
``error.type`` on failures); the rest are ``ingress.*``. ``/metrics`` renders the same
figures with the usual Prometheus translation (dots -> underscores, ``_total`` on counters,
``_seconds`` on the histogram).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ingress_egress.pipeline.latency import LatencyHistogram
from ingress_egress.status import ChatState, Counters

# Buckets of the receipt -> ack histogram: 1e-4 s .. 10 s, three per decade. Each is an
# exact bucket edge of ``LatencyHistogram`` (48 per decade from 1e-5 s), so the Prometheus
# rendering of that histogram is exact, and the OpenTelemetry histogram uses the same.
_STEP = 16  # LatencyHistogram buckets per bound: 48 per decade / 3
_FIRST, _LAST = 48, 288  # indexes of 1e-4 s and 10 s


def _bound(index: int) -> float:
    return float(f"{LatencyHistogram().upper_bound(index):.6g}")


LATENCY_BOUNDS_S: tuple[float, ...] = tuple(_bound(i) for i in range(_FIRST, _LAST + 1, _STEP))
LATENCY_BOUND_INDEXES: tuple[int, ...] = tuple(range(_FIRST, _LAST + 1, _STEP))
LATENCY_NAME = "ingress.delivery.duration"
LATENCY_DESCRIPTION = "Time from reading a chat event from Twitch to the bus acknowledging it"


class _Spool(Protocol):
    max_bytes: int
    healthy: bool

    @property
    def bytes(self) -> int: ...

    @property
    def count(self) -> int: ...

    def oldest_age_s(self, now: float | None = None) -> float | None: ...


class _Pipeline(Protocol):
    latency: LatencyHistogram
    spool: _Spool | None

    @property
    def depth(self) -> int: ...

    @property
    def in_flight(self) -> int: ...


class _Publisher(Protocol):
    name: str

    @property
    def connected(self) -> bool: ...


class MetricsSource(Protocol):
    """What the metrics read (the ``Service`` is one)."""

    counters: Counters
    state: ChatState
    pipeline: _Pipeline
    publisher: _Publisher

    @property
    def destination(self) -> str: ...


Point = tuple[dict[str, str], int | float]


@dataclass(frozen=True)
class Figure:
    name: str  # OpenTelemetry instrument name
    unit: str
    kind: str  # "counter" | "gauge" | "updown"
    description: str
    read: Callable[[MetricsSource], list[Point]]


SYSTEMS = {"nats": "nats", "pubsub": "gcp_pubsub"}


def bus_attributes(source: MetricsSource) -> dict[str, str]:
    return {
        "messaging.system": SYSTEMS.get(source.publisher.name, source.publisher.name),
        "messaging.destination.name": source.destination,
        "messaging.operation.name": "send",
    }


TWITCH = {"messaging.system": "twitch_irc", "messaging.operation.name": "receive"}


def _sent(source: MetricsSource) -> list[Point]:
    counters = source.counters
    attributes = bus_attributes(source)
    return [
        (attributes, counters.published),
        (
            {**attributes, "error.type": "publish_failed"},
            counters.failed - counters.dropped - counters.refused,
        ),
        ({**attributes, "error.type": "queue_full"}, counters.dropped),
        ({**attributes, "error.type": "spool_full"}, counters.refused),
    ]


def _spool(read: Callable[[_Spool], float | int | None]) -> Callable[..., list[Point]]:
    """A spool figure; no point at all when the service runs without a spool."""

    def points(source: MetricsSource) -> list[Point]:
        spool = source.pipeline.spool
        if spool is None:
            return []
        value = read(spool)
        return [({}, 0 if value is None else value)]

    return points


def _one(read: Callable[[MetricsSource], Any], **attributes: str) -> Callable[..., list[Point]]:
    return lambda source: [(dict(attributes), read(source))]


FIGURES: tuple[Figure, ...] = (
    Figure(
        "messaging.client.consumed.messages",
        "{message}",
        "counter",
        "Chat events received from Twitch (envelopes built)",
        lambda s: [(dict(TWITCH), s.counters.received)],
    ),
    Figure(
        "messaging.client.sent.messages",
        "{message}",
        "counter",
        "Envelopes acknowledged by the bus; with error.type, envelopes given up on",
        _sent,
    ),
    Figure(
        "ingress.twitch.reconnects",
        "{reconnect}",
        "counter",
        "Reconnects to Twitch IRC",
        _one(lambda s: s.state.reconnects),
    ),
    Figure(
        "ingress.twitch.parse_errors",
        "{line}",
        "counter",
        "Lines from Twitch that could not be parsed or handled",
        _one(lambda s: s.counters.parse_errors),
    ),
    Figure(
        "ingress.twitch.invalid_utf8",
        "{read}",
        "counter",
        "Reads from Twitch that were not valid UTF-8 (replaced, still processed)",
        _one(lambda s: s.counters.invalid_utf8),
    ),
    Figure(
        "ingress.publish.retries",
        "{attempt}",
        "counter",
        "Publish attempts beyond the first",
        _one(lambda s: s.counters.retries),
    ),
    Figure(
        "ingress.twitch.connected",
        "1",
        "gauge",
        "1 while logged in to Twitch IRC, else 0",
        _one(lambda s: int(s.state.connected)),
    ),
    Figure(
        "ingress.twitch.channels.joined",
        "{channel}",
        "gauge",
        "Channels Twitch confirmed joined",
        _one(lambda s: len(s.state.joined)),
    ),
    Figure(
        "ingress.twitch.channels.wanted",
        "{channel}",
        "gauge",
        "Channels configured",
        _one(lambda s: len(s.state.wanted)),
    ),
    Figure(
        "ingress.bus.connected",
        "1",
        "gauge",
        "1 while the bus driver can publish, else 0",
        _one(lambda s: int(s.publisher.connected)),
    ),
    Figure(
        "ingress.queue.depth",
        "{message}",
        "gauge",
        "Envelopes waiting to be sent to the bus (the memory window plus the spool's backlog)",
        _one(lambda s: s.pipeline.depth),
    ),
    Figure(
        "ingress.spool.bytes",
        "By",
        "gauge",
        "Bytes held by the durable spool (unacknowledged envelopes, segments not yet deleted)",
        _spool(lambda spool: spool.bytes),
    ),
    Figure(
        "ingress.spool.records",
        "{message}",
        "gauge",
        "Envelopes in the spool not yet acknowledged by the bus",
        _spool(lambda spool: spool.count),
    ),
    Figure(
        "ingress.spool.oldest_age",
        "s",
        "gauge",
        "Age of the oldest unacknowledged envelope in the spool (0 when empty)",
        _spool(lambda spool: round(spool.oldest_age_s() or 0.0, 3)),
    ),
    Figure(
        "ingress.spool.refused",
        "{message}",
        "counter",
        "Envelopes refused because the spool was full (SPOOL_MAX_BYTES)",
        _one(lambda s: s.counters.refused),
    ),
    Figure(
        "ingress.spool.degraded",
        "1",
        "gauge",
        "1 while spool writes fail (disk full or failing): unacknowledged envelopes are then "
        "held in memory only",
        _spool(lambda spool: int(not spool.healthy)),
    ),
    Figure(
        "ingress.spool.lost",
        "{message}",
        "counter",
        "Spooled envelopes lost to damage on disk (ranges in /_debug/twitch)",
        _one(lambda s: s.counters.spool_lost),
    ),
    Figure(
        "ingress.dead_letters",
        "{message}",
        "counter",
        "Envelopes rejected permanently by the bus and published to the dead-letter subject",
        _one(lambda s: s.counters.dead_lettered),
    ),
    Figure(
        "ingress.dead_letters.failed",
        "{message}",
        "counter",
        "Rejected envelopes whose dead letter could not be published either",
        _one(lambda s: s.counters.dead_letter_failed),
    ),
    Figure(
        "ingress.finalizer.unreachable",
        "{status}",
        "counter",
        "Failure statuses not delivered because the finalizer destination was unreachable",
        _one(lambda s: s.counters.finalizer_unreachable),
    ),
    Figure(
        "ingress.queue.in_flight",
        "{message}",
        "gauge",
        "Envelopes sent and not yet acknowledged (including retries)",
        _one(lambda s: s.pipeline.in_flight),
    ),
)


def latency_buckets(histogram: LatencyHistogram) -> list[tuple[float, int]]:
    """Cumulative counts at ``LATENCY_BOUNDS_S`` (then +Inf), read from the histogram."""
    counts = histogram.counts
    out: list[tuple[float, int]] = []
    running = 0
    start = 0
    for bound, index in zip(LATENCY_BOUNDS_S, LATENCY_BOUND_INDEXES, strict=True):
        running += sum(counts[start : index + 1])
        start = index + 1
        out.append((bound, running))
    out.append((float("inf"), histogram.count))
    return out
