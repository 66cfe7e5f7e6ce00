"""What the egress sender counts, for ``/metrics`` and ``/_debug/twitch``.

Plain numbers an adapter reads (the metrics module renders them): results by status and
reason, commands dead-lettered, results held back because nothing captures their
destination, and the command-to-Twitch latency (from the command's ``timestamp`` to
Twitch's answer to its first part) as a cumulative histogram.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Seconds; a command is normally answered within a second, unless it waited its turn.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


@dataclass
class LatencyBuckets:
    """A cumulative histogram (Prometheus style): counts per upper bound, sum, count."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: int = 0
    sum_s: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)  # the last: +Inf

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += 1
        self.sum_s += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), +Inf last."""
        running = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass
class SenderStats:
    results: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, reason)
    dead_lettered: int = 0
    destination_missing: int = 0  # results held back: nothing captured their destination
    last_missing_destination: str = ""
    bus_errors: int = 0
    ledger_errors: int = 0
    redelivered_with_outcome: int = 0  # a command found in the ledger: answered, not sent
    attached_deliveries: int = 0  # a second delivery of a command already pending here
    parts_sent: int = 0
    not_ready: int = 0  # commands put back: the transport was not ready for the channel
    latency: LatencyBuckets = field(default_factory=LatencyBuckets)
    last_error: str = ""

    def result(self, status: str, reason: str | None) -> None:
        self.results[(status, reason or "")] += 1

    def describe(self) -> dict[str, Any]:
        by_status: Counter[str] = Counter()
        for (status, _), count in self.results.items():
            by_status[status] += count
        return {
            "results": dict(sorted(by_status.items())),
            "resultsByReason": {
                f"{status}/{reason}" if reason else status: count
                for (status, reason), count in sorted(self.results.items())
            },
            "partsSent": self.parts_sent,
            "notReady": self.not_ready,
            "deadLettered": self.dead_lettered,
            "destinationMissing": self.destination_missing,
            "lastMissingDestination": self.last_missing_destination,
            "busErrors": self.bus_errors,
            "ledgerErrors": self.ledger_errors,
            "answeredFromLedger": self.redelivered_with_outcome,
            "attachedDeliveries": self.attached_deliveries,
            "latencyCount": self.latency.total,
            "lastError": self.last_error,
        }
