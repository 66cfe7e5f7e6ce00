"""Reading a ``/metrics`` scrape in tests: which names have samples, and their values."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

# Present only in cluster mode (CLUSTER_COORDINATION not none, issue #16): checked against a
# cluster-mode scrape with ``missing_from_scrape(text, CLUSTER_METRICS)``.
CLUSTER_METRICS = frozenset(
    {
        "ingress_cluster_members",
        "ingress_cluster_replicas",
        "ingress_cluster_channels_owned",
        "ingress_cluster_channels_under_replicated",
        "ingress_cluster_store_connected",
    }
)

# Present only while egress is on (EGRESS_TRANSPORT not off, issue #29): MetricsSource.egress.
EGRESS_METRICS = frozenset(
    {
        "ingress_egress_results_total",
        "ingress_egress_backlog",
        "ingress_egress_latency_seconds_bucket",
        "ingress_egress_latency_seconds_sum",
        "ingress_egress_latency_seconds_count",
        "ingress_egress_unseen_total",
        "ingress_egress_dead_letters_total",
        "ingress_egress_destination_blocked",
        "ingress_egress_lease_held",
    }
)


def missing_from_scrape(text: str, names: set[str] | frozenset[str]) -> set[str]:
    """The names with no sample in a ``/metrics`` scrape (a histogram's samples are
    ``_bucket``/``_sum``/``_count``, a counter's ``_total``: the names PromQL uses)."""
    sampled = {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }
    return set(names) - sampled


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out
