"""The finalizer record of a command, and expiry."""

from __future__ import annotations

import orjson
import pytest

from ingress_egress.egress.command import decode_command
from ingress_egress.egress.expiry import expired_outcome, is_expired
from ingress_egress.egress.result import Outcome, result_for
from tests.support.egress_commands import COMMAND_ID, command, encode, validator

NOW = 1_796_690_401.25  # 2026-12-08T00:40:01.250Z


def test_a_sent_result_has_the_finalizer_status_shape() -> None:
    decoded = decode_command(encode(command()))
    result = result_for(decoded, Outcome("sent", ("a1", "b2"), attempts=2), NOW)
    body = orjson.loads(result.encode())
    assert body == {
        "type": "internal.finalizer.status.v1",
        "id": f"{COMMAND_ID}:ingress-egress:egress",
        "stage": "ingress-egress",
        "envelopeId": COMMAND_ID,
        "eventType": "egress.chat.message.v1",
        "correlationId": decoded.correlation_id,
        "traceId": decoded.trace_id,
        "channel": "forsen",
        "status": "sent",
        "twitchMessageIds": ["a1", "b2"],
        "reason": None,
        "detail": None,
        "attempts": 2,
        "timestamp": "2026-12-08T00:40:01.250Z",
    }
    assert result.id == body["id"]  # also the Nats-Msg-Id
    assert result.subject("dev.") == "dev.internal.finalizer.v1"
    validator("egress-result.schema.json").validate(body)


def test_the_result_goes_where_the_command_says() -> None:
    decoded = decode_command(encode(command(finalizationDestination="team.finalizer.v2")))
    result = result_for(decoded, Outcome("dropped", reason="msg_banned"), NOW)
    assert result.subject("") == "team.finalizer.v2"
    validator("egress-result.schema.json").validate(orjson.loads(result.encode()))


@pytest.mark.parametrize("status", ["sent", "dropped", "expired", "failed", "unknown"])
def test_every_status_validates(status: str) -> None:
    decoded = decode_command(encode(command()))
    outcome = Outcome(status, reason=None if status == "sent" else "why")  # type: ignore[arg-type]
    validator("egress-result.schema.json").validate(
        orjson.loads(result_for(decoded, outcome, NOW).encode())
    )


def test_a_command_older_than_the_max_age_expires() -> None:
    decoded = decode_command(encode(command(timestamp="2026-12-08T00:40:00.000Z")))
    max_age_s = 120.0
    assert not is_expired(decoded, decoded.issued_at + 120.0, max_age_s)
    assert is_expired(decoded, decoded.issued_at + 120.001, max_age_s)
    outcome = expired_outcome(decoded, decoded.issued_at + 150.0, max_age_s)
    assert outcome.status == "expired" and outcome.reason == "max_age"
    assert outcome.detail == "150000 ms old at its turn (EGRESS_MAX_AGE_MS 120000)"


def test_a_timestamp_with_an_offset_is_read_as_the_same_instant() -> None:
    utc = decode_command(encode(command(timestamp="2026-12-08T00:40:00Z")))
    offset = decode_command(encode(command(timestamp="2026-12-08T01:40:00+01:00")))
    assert utc.issued_at == offset.issued_at
