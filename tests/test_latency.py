"""The latency histogram: the batch recorder agrees with one ``record`` per sample."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ingress_egress.status import LatencyHistogram

SECONDS = st.floats(min_value=-1.0, max_value=1_000.0, allow_nan=False)


@given(st.lists(SECONDS, max_size=50), st.lists(SECONDS, max_size=50))
def test_record_since_matches_record_per_sample(first: list[float], second: list[float]) -> None:
    one_by_one, batched = LatencyHistogram(), LatencyHistogram()
    now = 5_000.0
    for batch in (first, second):
        for seconds in batch:
            one_by_one.record(now - (now - seconds))
        batched.record_since(now, [now - seconds for seconds in batch])
    assert batched.counts == one_by_one.counts
    assert batched.count == one_by_one.count == len(first) + len(second)
    assert math.isclose(batched.total_s, one_by_one.total_s, abs_tol=1e-6)
    assert batched.max_s == one_by_one.max_s


def test_quantiles_come_from_the_recorded_batches() -> None:
    histogram = LatencyHistogram()
    histogram.record_since(10.0, [10.0 - 0.001] * 99 + [10.0 - 2.0])
    summary = histogram.summary_ms()
    assert summary["count"] == 100
    assert 0.95 <= summary["p50"] <= 1.06  # within one bucket (~5%) of 1 ms
    assert summary["max"] == 2000.0


RUNS = st.lists(st.tuples(SECONDS, st.integers(min_value=1, max_value=30)), max_size=20)


@given(RUNS)
def test_runs_of_one_receipt_time_count_like_single_samples(runs: list[tuple[float, int]]) -> None:
    """A read's messages share their receipt time: a run is counted once per message."""
    samples = [seconds for seconds, repeat in runs for _ in range(repeat)]
    one_by_one, batched = LatencyHistogram(), LatencyHistogram()
    now = 5_000.0
    for seconds in samples:
        one_by_one.record(now - (now - seconds))
    batched.record_since(now, [now - seconds for seconds in samples])
    assert batched.counts == one_by_one.counts
    assert batched.count == len(samples)
    assert math.isclose(batched.total_s, one_by_one.total_s, rel_tol=1e-9, abs_tol=1e-6)
    assert batched.max_s == one_by_one.max_s
