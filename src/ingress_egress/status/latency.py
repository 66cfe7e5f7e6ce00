"""A fixed-size latency histogram (log-spaced buckets): constant memory, cheap to record."""

from __future__ import annotations

import math
from itertools import groupby


class LatencyHistogram:
    """Seconds in, quantiles out, within one bucket's width (about 5%)."""

    def __init__(self, smallest_s: float = 1e-5, largest_s: float = 100.0, per_decade: int = 48):
        self.smallest_s = smallest_s
        self.per_decade = per_decade
        self.size = int(math.log10(largest_s / smallest_s) * per_decade) + 2
        self.counts = [0] * self.size
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0

    def _bucket(self, seconds: float) -> int:
        if seconds <= self.smallest_s:
            return 0
        index = int(math.log10(seconds / self.smallest_s) * self.per_decade) + 1
        return min(index, self.size - 1)

    def record(self, seconds: float) -> None:
        self.counts[self._bucket(seconds)] += 1
        self.count += 1
        self.total_s += seconds
        if seconds > self.max_s:
            self.max_s = seconds

    def record_since(self, now: float, started: list[float]) -> None:
        """``record(now - t)`` for each ``t``: one call per acknowledged batch. The messages
        of one read share their receipt time, so each run of equal times costs one bucket
        computation (per-message method calls were ~4% of the service's time)."""
        counts, smallest, per_decade, last = (
            self.counts,
            self.smallest_s,
            self.per_decade,
            self.size - 1,
        )
        log10 = math.log10
        total = 0.0
        longest = self.max_s
        for start, run in groupby(started):
            n = len(list(run))
            seconds = now - start
            total += seconds * n
            if seconds > longest:
                longest = seconds
            if seconds <= smallest:
                counts[0] += n
            else:
                index = int(log10(seconds / smallest) * per_decade) + 1
                counts[index if index < last else last] += n
        self.count += len(started)
        self.total_s += total
        self.max_s = longest

    def upper_bound(self, index: int) -> float:
        return self.smallest_s * 10 ** (index / self.per_decade)

    def quantile(self, q: float) -> float | None:
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return min(self.upper_bound(index), self.max_s)
        return self.max_s

    def summary_ms(self) -> dict[str, float | int | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 3)

        return {
            "count": self.count,
            "p50": ms(self.quantile(0.5)),
            "p99": ms(self.quantile(0.99)),
            "p999": ms(self.quantile(0.999)),
            "max": ms(self.max_s if self.count else None),
        }
