"""The service's metrics, defined once over its plain counters and state.

Names follow the OpenTelemetry messaging semantic conventions where one fits
(``messaging.client.consumed.messages``, ``messaging.client.sent.messages`` with
``error.type`` on failures); the rest are ``ingress.*``. ``/metrics`` renders the same
figures with the usual Prometheus translation (dots -> underscores, ``_total`` on counters,
``_seconds`` on the histogram).
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingress_egress.envelope.types import EVENT_TYPES
from ingress_egress.status import ChatState, Counters, LatencyHistogram

if TYPE_CHECKING:
    from ingress_egress.bus.base import Publisher
    from ingress_egress.cluster import ClusterCoordinator
    from ingress_egress.credentials import CredentialsProvider
    from ingress_egress.egress.sender_stats import SenderStats
    from ingress_egress.pipeline import Pipeline
    from ingress_egress.spool import Spool

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
EGRESS_LATENCY_NAME = "ingress.egress.latency"
EGRESS_LATENCY_DESCRIPTION = (
    "Time from an egress command's timestamp to Twitch's answer to its first part"
)


@dataclass(frozen=True)
class EgressMetrics:
    """What the egress figures read (``MetricsSource.egress``; None while egress is off).

    Plain reads of the sender's parts, called at collection time only."""

    stats: SenderStats
    backlog: Callable[[], int]  # commands received and not yet settled (acked or put back)
    unseen: Callable[[], int]  # sent messages whose echo never came back in chat
    lease_held: Callable[[], bool]  # this member may send (holds the send lease)
    destination_blocked: Callable[[], bool]  # results held: nothing captures the destination


@dataclass(frozen=True, eq=False)  # identity: a key of the receipt clock's weak map
class MetricsSource:
    """What the metrics read: the service's parts, handed over once built (the OpenTelemetry
    callbacks and ``/metrics`` read them at collection time, never the hot path)."""

    counters: Counters
    chat: ChatState
    pipeline: Pipeline
    publisher: Publisher
    credentials: CredentialsProvider | None
    cluster: ClusterCoordinator | None
    destination: str  # the bus subject / topic envelopes are published to
    readiness: Callable[[], list[str]]
    recent_loop_lag_s: Callable[[], float]
    connections: Callable[[], list[dict[str, Any]]]
    egress: EgressMetrics | None = None  # None: EGRESS_TRANSPORT off (no egress series)


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


def _spool(read: Callable[[Spool], float | int | None]) -> Callable[..., list[Point]]:
    """A spool figure; no point at all when the service runs without a spool."""

    def points(source: MetricsSource) -> list[Point]:
        spool = source.pipeline.spool
        if spool is None:
            return []
        value = read(spool)
        return [({}, 0 if value is None else value)]

    return points


def _cluster(read: Callable[[ClusterCoordinator], float | int]) -> Callable[..., list[Point]]:
    """A cluster figure; no point at all when the service runs as a single instance."""

    def points(source: MetricsSource) -> list[Point]:
        cluster = source.cluster
        return [] if cluster is None else [({}, read(cluster))]

    return points


def _egress(read: Callable[[EgressMetrics], float | int]) -> Callable[..., list[Point]]:
    """An egress figure; no point at all while egress is off."""

    def points(source: MetricsSource) -> list[Point]:
        egress = source.egress
        return [] if egress is None else [({}, read(egress))]

    return points


def _egress_results(source: MetricsSource) -> list[Point]:
    """Results by status and reason ("" when none). ``sent`` is there from 0 so the series
    exists from the start; a (status, reason) pair appears with its first result."""
    if source.egress is None:
        return []
    counts: Counter[tuple[str, str]] = Counter({("sent", ""): 0})
    counts.update(source.egress.stats.results)
    return [
        ({"status": status, "reason": reason}, count)
        for (status, reason), count in sorted(counts.items())
    ]


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
        _one(lambda s: s.chat.reconnects),
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
        "ingress.twitch.oversized_lines",
        "{line}",
        "counter",
        "Lines from Twitch over the maximum line length, discarded",
        _one(lambda s: s.counters.oversized_lines),
    ),
    Figure(
        "ingress.twitch.unknown_commands",
        "{line}",
        "counter",
        "Lines from Twitch with a command the service has no type for, ignored",
        _one(lambda s: s.counters.unknown_commands),
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
        _one(lambda s: int(s.chat.connected)),
    ),
    Figure(
        "ingress.twitch.channels.joined",
        "{channel}",
        "gauge",
        "Channels Twitch confirmed joined",
        _one(lambda s: len(s.chat.joined)),
    ),
    Figure(
        "ingress.twitch.channels.wanted",
        "{channel}",
        "gauge",
        "Channels configured",
        _one(lambda s: len(s.chat.reading)),
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
        _spool(lambda spool: spool.held_bytes),
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
    # Cluster mode only (CLUSTER_COORDINATION): as this member sees the cluster.
    Figure(
        "ingress.cluster.members",
        "{member}",
        "gauge",
        "Live cluster members, this one included",
        _cluster(lambda c: len(c.live_members())),
    ),
    Figure(
        "ingress.cluster.replicas",
        "{member}",
        "gauge",
        "Members that should read each channel (CLUSTER_REPLICAS)",
        _cluster(lambda c: c.replicas),
    ),
    Figure(
        "ingress.cluster.channels.owned",
        "{channel}",
        "gauge",
        "Channels this member reads by assignment",
        _cluster(lambda c: len(c.owned)),
    ),
    Figure(
        "ingress.cluster.channels.under_replicated",
        "{channel}",
        "gauge",
        "Wanted channels joined by fewer members than min(replicas, live members)",
        _cluster(lambda c: len(c.under_replicated)),
    ),
    Figure(
        "ingress.cluster.store.connected",
        "1",
        "gauge",
        "1 while the coordination store answers, else 0",
        _cluster(lambda c: int(c.store_connected)),
    ),
    # -- figures the alerts and the dashboard need (docs/ops/alerts.yaml) --------------
    Figure(
        "ingress.envelopes",
        "{envelope}",
        "counter",
        "Envelopes built from Twitch events, by envelope type",
        lambda s: _by_type(s),
    ),
    Figure(
        "ingress.ready",
        "1",
        "gauge",
        "1 while /readyz answers 200 (Twitch, every channel, the bus, credentials), else 0",
        _one(lambda s: int(not s.readiness())),
    ),
    Figure(
        "ingress.twitch.channels.pending",
        "{channel}",
        "gauge",
        "Channels configured and not yet joined (JOIN sent or queued; not refused)",
        _one(lambda s: len(s.chat.pending)),
    ),
    Figure(
        "ingress.twitch.channels.failed",
        "{channel}",
        "gauge",
        "Channels Twitch refused to join (suspended, banned, ...; retried periodically)",
        _one(lambda s: len(s.chat.failed_channels)),
    ),
    Figure(
        "ingress.twitch.connections",
        "{connection}",
        "gauge",
        "Connections to Twitch, by state (connected = logged in)",
        lambda s: _connections(s),
    ),
    Figure(
        "ingress.twitch.last_received_time",
        "s",
        "gauge",
        "Unix time chat events were last seen arriving, from any channel (checked when "
        "metrics are read; the time of the first read until the first event)",
        lambda s: [({}, _RECEIPTS.last_time(s))],
    ),
    Figure(
        "ingress.event_loop.lag",
        "s",
        "gauge",
        "Worst lateness of the event loop's heartbeat over about the last minute "
        "(/livez fails at 5 s)",
        _one(lambda s: round(s.recent_loop_lag_s(), 3)),
    ),
    Figure(
        "ingress.credentials.healthy",
        "1",
        "gauge",
        "1 while the bot's credentials are usable and refreshing, else 0 (none when anonymous)",
        lambda s: _credentials(s, lambda status: int(status.get("state") == "ok")),
    ),
    Figure(
        "ingress.credentials.token_expiry_time",
        "s",
        "gauge",
        "Unix time the bot's current access token expires (the earliest of its identities)",
        lambda s: _credentials(s, _token_expiry),
    ),
    Figure(
        "ingress.credentials.refresh_failures",
        "{failure}",
        "counter",
        "Failed token loads, refreshes and validations (Firestore-backed credentials)",
        lambda s: _credentials(s, _refresh_failures),
    ),
    Figure(
        "ingress.spool.max_bytes",
        "By",
        "gauge",
        "The spool's size cap (SPOOL_MAX_BYTES); envelopes are refused past it",
        _spool(lambda spool: spool.max_bytes),
    ),
    # Egress only (EGRESS_TRANSPORT not off); the latency histogram is rendered beside.
    Figure(
        "ingress.egress.results",
        "{result}",
        "counter",
        "Egress commands settled, by result status (sent, dropped, expired, failed, unknown) "
        "and reason (Twitch's drop code or ours; empty when none)",
        _egress_results,
    ),
    Figure(
        "ingress.egress.backlog",
        "{command}",
        "gauge",
        "Egress commands received from the bus and not yet settled",
        _egress(lambda e: e.backlog()),
    ),
    Figure(
        "ingress.egress.unseen",
        "{message}",
        "counter",
        "Messages sent to a channel the service reads and not seen back in its chat within "
        "EGRESS_ECHO_TIMEOUT_MS (dropped silently by Twitch?)",
        _egress(lambda e: e.unseen()),
    ),
    Figure(
        "ingress.egress.dead_letters",
        "{command}",
        "counter",
        "Egress commands that could not be read at all, published to the egress dead-letter "
        "subject",
        _egress(lambda e: e.stats.dead_lettered),
    ),
    Figure(
        "ingress.egress.destination_blocked",
        "1",
        "gauge",
        "1 while results are held back because nothing captures their finalizer destination "
        "(the commands stay unacknowledged and are retried), else 0",
        _egress(lambda e: int(e.destination_blocked())),
    ),
    Figure(
        "ingress.egress.lease_held",
        "1",
        "gauge",
        "1 while this member holds the send lease (may send as the bot), else 0",
        _egress(lambda e: int(e.lease_held())),
    ),
)


def _by_type(source: MetricsSource) -> list[Point]:
    counts = source.pipeline.envelopes_by_type()
    kinds = list(EVENT_TYPES) + sorted(set(counts) - set(EVENT_TYPES))  # every type, from 0
    return [({"envelope.type": kind}, counts.get(kind, 0)) for kind in kinds]


def _connections(source: MetricsSource) -> list[Point]:
    entries = source.connections()
    up = sum(1 for entry in entries if entry.get("connected"))
    return [({"state": "connected"}, up), ({"state": "disconnected"}, len(entries) - up)]


class _ReceiptClock:
    """When ``counters.received`` last moved, noticed at read time: the hot path pays
    nothing, and the precision (one scrape interval) is plenty for a silence alert."""

    def __init__(self) -> None:
        self._seen: weakref.WeakKeyDictionary[Any, tuple[int, float]] = weakref.WeakKeyDictionary()

    def last_time(self, source: MetricsSource) -> float:
        received = source.counters.received
        seen = self._seen.get(source)
        if seen is None or seen[0] != received:
            seen = (received, round(time.time(), 3))
            self._seen[source] = seen
        return seen[1]


_RECEIPTS: _ReceiptClock = _ReceiptClock()


def _credentials(
    source: MetricsSource, read: Callable[[dict[str, Any]], float | int | None]
) -> list[Point]:
    """A credentials figure: no point when anonymous, or when the provider cannot tell."""
    if source.credentials is None:
        return []
    value = read(source.credentials.status())
    return [] if value is None else [({}, value)]


def _identities(status: dict[str, Any]) -> list[dict[str, Any]]:
    identities = status.get("identities")
    return list(identities.values()) if isinstance(identities, dict) else []


def _token_expiry(status: dict[str, Any]) -> float | None:
    left = [i["expires_in_s"] for i in _identities(status) if i.get("expires_in_s") is not None]
    return round(time.time() + min(left)) if left else None


def _refresh_failures(status: dict[str, Any]) -> int | None:
    counts = [i.get("counters", {}).get("failures") for i in _identities(status)]
    known = [count for count in counts if isinstance(count, int)]
    return sum(known) if known else None


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
