"""The alert rules and the Grafana dashboard in docs/ops/ against the real service: every
metric they name is in a scrape of ``/metrics`` (so renaming a metric breaks the build, not
the pager), and the figures added for them read what the service really does.

promtool checks and unit-tests the rules themselves (``make alerts``, part of ``make test``).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings
from ingress_egress.envelope.types import EVENT_TYPES, MESSAGE, MODERATION, NOTIFICATION, ROOMSTATE
from ingress_egress.simulator import ChatSimulator, Faults
from tests.support.credentials import LOGIN, provider_for, store_tokens
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    firestore_emulator_fixture,
    firestore_env_fixture,
)
from tests.support.scrape import CLUSTER_METRICS, EGRESS_METRICS, missing_from_scrape, samples
from tests.support.service import eventually, get, running, settings_for, wait_status
from tests.support.twitch_oauth_mock import TwitchOAuthMock, oauth_mock_fixture

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "docs" / "ops"
RULES = yaml.safe_load((OPS / "alerts.yaml").read_text())
DASHBOARD = json.loads((OPS / "grafana-dashboard.json").read_text())
RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()

# Every metric of this service (and the client library's process_*) starts so; label names,
# PromQL functions and Grafana variables do not.
METRIC = re.compile(r"\b(?:ingress|messaging|process)_[a-z0-9_]+\b")


def rules() -> list[dict[str, Any]]:
    return [rule for group in RULES["groups"] for rule in group["rules"]]


def panels() -> list[dict[str, Any]]:
    out = []
    for panel in DASHBOARD["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # a collapsed row holds its panels
    return out


def dashboard_exprs() -> list[str]:
    exprs = [target["expr"] for panel in panels() for target in panel.get("targets", [])]
    exprs += [v["definition"] for v in DASHBOARD["templating"]["list"] if v.get("definition")]
    return exprs


def metric_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC.findall(expr)}


ALERT_NAMES = metric_names([rule["expr"] for rule in rules()])
DASHBOARD_NAMES = metric_names(dashboard_exprs())


def only(scrape: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    values = [
        value for got, value in scrape[name] if all(got.get(k) == v for k, v in labels.items())
    ]
    assert len(values) == 1, (name, scrape.get(name))
    return values[0]


# -- the files themselves -------------------------------------------------------------


def runbook_anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings (lower case, punctuation dropped)."""
    headings = re.findall(r"^#+ (.+)$", RUNBOOK, re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_a_duration_a_severity_a_summary_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) >= 13
    for rule in rules():
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        summary = rule["annotations"]["summary"]
        assert summary and "\n" not in summary, rule["alert"]
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md" and anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"{rule['alert']}: no section {url}"


def test_the_runbook_links_within_itself_resolve() -> None:
    links = re.findall(r"\]\(#([^)]+)\)", RUNBOOK)
    assert len(links) >= 15
    assert set(links) <= runbook_anchors()


def test_promtool_tests_cover_every_alert() -> None:
    tests = yaml.safe_load((OPS / "alerts.test.yaml").read_text())
    assert tests["rule_files"] == ["alerts.yaml"]
    fired: set[str] = set()
    for case in tests["tests"]:
        instances = {
            re.search(r'instance="(\w+)"', s["series"]).group(1) for s in case["input_series"]
        }  # type: ignore[union-attr]
        assert "ok" in instances and "bad" in instances, case["name"]  # one that must not fire
        for check in case["alert_rule_test"]:
            for alert in check["exp_alerts"]:
                labels = alert["exp_labels"]
                # an alert over a whole deployment (by job) names the bad job instead
                assert labels.get("instance", labels.get("job")) == "bad", case["name"]
                fired.add(check["alertname"])
    assert fired == {rule["alert"] for rule in rules()}


def test_the_dashboard_takes_its_data_source_from_a_variable() -> None:
    (variable,) = [v for v in DASHBOARD["templating"]["list"] if v["type"] == "datasource"]
    assert variable["name"] == "datasource" and variable["query"] == "prometheus"
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    queried = [panel for panel in panels() if panel["type"] != "row"]
    assert len(queried) >= 20
    for panel in queried:
        sources = [panel["datasource"]] + [t["datasource"] for t in panel["targets"]]
        assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources), panel
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    assert DASHBOARD["id"] is None and DASHBOARD["uid"]  # importable anywhere


def test_the_dashboard_shows_what_ops_need() -> None:
    exprs = " ".join(dashboard_exprs())
    for needed in (
        "messaging_client_consumed_messages_total",
        'messaging_client_sent_messages_total{job=~"$job",error_type!=""}',
        "histogram_quantile(0.99, sum by (le) (rate(ingress_delivery_duration_seconds_bucket",
        "ingress_queue_depth",
        "ingress_spool_bytes",
        "ingress_twitch_connections",
        "ingress_twitch_channels_pending",
        "ingress_twitch_channels_failed",
        "ingress_twitch_reconnects_total",
        "ingress_credentials_healthy",
        "sum by (envelope_type) (rate(ingress_envelopes_total",
    ):
        assert needed in exprs, needed
    assert CLUSTER_METRICS <= DASHBOARD_NAMES


def test_cluster_metrics_are_named_in_one_place() -> None:
    """Only the names in CLUSTER_METRICS may be missing from a scrape without cluster mode."""
    used = ALERT_NAMES | DASHBOARD_NAMES
    assert {n for n in used if n.startswith("ingress_cluster_")} == CLUSTER_METRICS
    assert {"ingress_cluster_channels_under_replicated", "ingress_cluster_members"} <= ALERT_NAMES


def test_egress_metrics_are_named_in_one_place() -> None:
    """Only the names in EGRESS_METRICS may be missing from a scrape without egress
    (tests/test_egress_metrics.py scrapes them with egress on)."""
    used = ALERT_NAMES | DASHBOARD_NAMES
    assert {n for n in used if n.startswith("ingress_egress_")} <= EGRESS_METRICS
    assert {
        "ingress_egress_backlog",
        "ingress_egress_results_total",
        "ingress_egress_unseen_total",
        "ingress_egress_lease_held",
        "ingress_egress_destination_blocked",
    } <= ALERT_NAMES


def test_the_name_check_catches_a_renamed_metric() -> None:
    text = "# TYPE ingress_ready gauge\ningress_ready 1\n# TYPE x_total counter\nx_total 2\n"
    assert missing_from_scrape(text, {"ingress_ready", "x_total"}) == set()
    assert missing_from_scrape(text, {"ingress_is_ready", "x"}) == {"ingress_is_ready", "x"}


# -- against the running service --------------------------------------------------------


twitch = oauth_mock_fixture()


@pytest.mark.emulator
@pytest.mark.timeout(120)
async def test_every_metric_in_the_alerts_and_the_dashboard_is_scraped(
    firestore_env: FirestoreEmulator, twitch: TwitchOAuthMock, tmp_path: Path
) -> None:
    """The bot (tokens from the Firestore emulator), a spool, the simulator with one
    suspended channel and one whose JOIN goes unanswered."""
    await store_tokens(firestore_env, twitch)
    faults = Faults(suspended_channels={"gone"}, ignored_joins={"mute"})
    started = time.time()
    async with ChatSimulator(count=40, rate=400, faults=faults) as sim:
        settings = settings_for(
            Settings.defaults(
                message_bus_driver="memory",
                twitch_bot_username=LOGIN,
                spool_dir=str(tmp_path / "spool"),
                spool_max_bytes=1 << 20,
            ),
            sim.port,
            ("one", "two", "gone", "mute"),
        )
        provider = provider_for(firestore_env, twitch)
        async with running(settings, publisher=MemoryPublisher(), credentials=provider) as service:
            await wait_status(service, "/readyz", 503)
            assert await sim.wait_sent(40, timeout=30)
            await eventually(lambda: len(service.state.joined) == 2, what="two joined")
            await eventually(lambda: "gone" in service.state.failed_channels, what="refusal")
            await eventually(lambda: service.counters.published >= 40, what="publishes")
            text = (await get(service, "/metrics")).text
            # Stall the event loop on purpose: the next scrape must still show it.
            time.sleep(1.6)  # noqa: ASYNC251  # fixed wait: the stall itself, 1.1 s past a beat

            async def beating_again() -> bool:  # the current lag back down: the stall is over
                return (await get(service, "/livez")).json()["loopLagSeconds"] < 1.0

            await eventually(beating_again, 10, "the heartbeat after the stall")
            stalled = (await get(service, "/metrics")).text
        scraped_at = time.time()

    optional = CLUSTER_METRICS | EGRESS_METRICS  # (egress: tests/test_egress_metrics.py)
    assert missing_from_scrape(text, ALERT_NAMES - optional) == set()
    assert missing_from_scrape(text, DASHBOARD_NAMES - optional) == set()
    # Without cluster mode there are none of its series (and nothing else is missing).
    assert missing_from_scrape(text, CLUSTER_METRICS) == CLUSTER_METRICS

    # The new figures read the service's real state.
    scrape = samples(text)
    assert only(scrape, "ingress_ready") == 0  # "gone" failed, "mute" pending
    assert only(scrape, "ingress_twitch_channels_joined") == 2
    assert only(scrape, "ingress_twitch_channels_failed") == 1
    assert only(scrape, "ingress_twitch_channels_pending") == 1
    assert only(scrape, "ingress_twitch_connections", state="connected") == 1
    assert only(scrape, "ingress_twitch_connections", state="disconnected") == 0
    assert started <= only(scrape, "ingress_twitch_last_received_time") <= scraped_at
    assert only(scrape, "ingress_credentials_healthy") == 1
    expiry = only(scrape, "ingress_credentials_token_expiry_time")
    assert started + twitch.expires_in - 120 <= expiry <= scraped_at + twitch.expires_in + 120
    assert only(scrape, "ingress_credentials_refresh_failures_total") == 0
    assert only(scrape, "ingress_spool_max_bytes") == 1 << 20
    by_type = {
        labels["envelope_type"]: value for labels, value in scrape["ingress_envelopes_total"]
    }
    assert set(by_type) == set(EVENT_TYPES)  # every type from the start, no other label
    assert by_type[ROOMSTATE] == 2  # one per joined channel
    assert by_type[MESSAGE] >= 40 - by_type[NOTIFICATION] - by_type[MODERATION]
    received = only(scrape, "messaging_client_consumed_messages_total")
    assert sum(by_type.values()) == received
    assert only(scrape, "ingress_event_loop_lag") < 1.0
    assert only(samples(stalled), "ingress_event_loop_lag") >= 1.0
