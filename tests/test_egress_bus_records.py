"""Egress bus pieces that need no bus: dead-letter records, destinations, the backoff."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from ingress_egress.bus.egress_backoff import Backoff
from ingress_egress.bus.egress_dead_letters import EMBED_MAX_BYTES, dead_letter_record
from ingress_egress.bus.egress_protocol import valid_destination

NOW = 1_795_000_000.25


def record_of(data: bytes, bus_id: str = "EGRESS:7") -> dict:
    raw = dead_letter_record(
        data, "why", attempts=3, source="p.internal.egress.v1", bus_id=bus_id, now=NOW
    )
    return json.loads(raw)


def test_a_json_command_is_embedded_as_it_was_with_its_routing_fields() -> None:
    command = {
        "id": "c-1",
        "type": "egress.chat.message.v1",
        "correlationId": "k-1",
        "traceId": "t-1",
        "target": {"channel": "forsen"},
        "payload": {"text": 7},
    }
    record = record_of(json.dumps(command).encode())
    assert record["command"] == command
    assert {key: record[key] for key in ("id", "eventType", "correlationId", "traceId")} == {
        "id": "c-1",
        "eventType": "egress.chat.message.v1",
        "correlationId": "k-1",
        "traceId": "t-1",
    }
    assert record["channel"] == "forsen"
    assert record["attempts"] == 3 and record["permanent"] is True
    assert record["deadLetteredAt"] == "2026-11-18T11:06:40.250Z"
    assert "commandBase64" not in record


def test_bytes_that_are_not_json_travel_whole_as_base64() -> None:
    garbage = b"\x00\xff{not json\r\nPRIVMSG #x :hi"
    record = record_of(garbage)
    assert record["id"] == "EGRESS:7"  # no readable id: the bus's
    assert record["command"] is None
    assert base64.b64decode(record["commandBase64"]) == garbage
    assert record["commandPreview"].endswith("PRIVMSG #x :hi")
    assert record["commandBytes"] == len(garbage)


def test_overlong_routing_fields_are_left_out() -> None:
    record = record_of(json.dumps({"id": "x" * 201, "type": "t" * 5000}).encode())
    assert (record["id"], record["eventType"]) == ("EGRESS:7", None)


def test_json_that_is_not_an_object_has_no_routing_fields() -> None:
    record = record_of(b'["id", "x"]')
    assert record["id"] == "EGRESS:7"
    assert record["command"] == ["id", "x"]
    assert record["eventType"] is None and record["channel"] is None


def test_an_oversized_command_is_described_not_embedded() -> None:
    huge = b'{"id": "big", "pad": "' + b"x" * EMBED_MAX_BYTES + b'"}'
    raw = dead_letter_record(huge, "too big", attempts=1, source="s", bus_id="b", now=NOW)
    record = json.loads(raw)
    assert record["id"] == "big"
    assert record["command"] is None and "commandBase64" not in record
    assert len(record["commandPreview"]) == 2048
    assert len(raw) < 16 * 1024


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("internal.finalizer.v1", True),
        ("team-a.results_v2", True),
        ("internal.>", False),
        ("internal.*.v1", False),
        ("a b", False),
        ("", False),
        (".leading", False),
        ("trailing.", False),
        ("a\r\nb", False),
        ("x" * 201, False),
    ],
)
def test_destinations_are_plain_names(name: str, valid: bool) -> None:
    assert valid_destination(name) is valid


def test_the_backoff_grows_to_its_cap_and_starts_over_after_a_success() -> None:
    backoff = Backoff(initial_s=0.2, max_s=5.0)
    first = backoff.next_delay()
    assert 0.2 <= first <= 0.4
    for _ in range(10):
        backoff.next_delay()
    assert backoff.next_delay() == 5.0
    backoff.succeeded()
    assert backoff.next_delay() <= 0.4


async def test_the_backoff_wait_ends_when_told_to_stop() -> None:
    backoff = Backoff(initial_s=60.0, max_s=60.0)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(backoff.wait(stop), 5)  # would take 60 s otherwise
