"""Token document parsing and lookup strategies (pure functions; no Firestore needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds

from ingress_egress.credentials.errors import DOCUMENT_INVALID, INVALID_IDENTITY, StoreError
from ingress_egress.credentials.token_store import (
    LoginLookup,
    UserIdLookup,
    format_expires_at,
    lookup_strategy,
    parse_expires_at,
    record_from_document,
)

MOMENT = datetime(2030, 5, 17, 12, 30, 15, tzinfo=UTC)
EPOCH = MOMENT.timestamp()


@pytest.mark.parametrize(
    ("value", "fmt"),
    [
        (MOMENT, "timestamp"),
        (DatetimeWithNanoseconds(2030, 5, 17, 12, 30, 15, tzinfo=UTC), "timestamp"),
        (MOMENT.astimezone(timezone(timedelta(hours=2))), "timestamp"),
        (MOMENT.replace(tzinfo=None), "timestamp"),  # naive: UTC
        ("2030-05-17T12:30:15Z", "iso"),
        ("2030-05-17T12:30:15+00:00", "iso"),
        ("2030-05-17T14:30:15+02:00", "iso"),
        ("2030-05-17T12:30:15", "iso"),  # naive: UTC
        ("2030-05-17T12:30:15.000Z", "iso"),
        (int(EPOCH), "epoch_s"),
        (EPOCH, "epoch_s"),
        (int(EPOCH * 1000), "epoch_ms"),
    ],
)
def test_expires_at_formats(value: object, fmt: str) -> None:
    parsed, found = parse_expires_at(value)
    assert found == fmt
    assert parsed == pytest.approx(EPOCH, abs=0.001)


@pytest.mark.parametrize("value", ["", "tomorrow", True, -5, 0, float("nan"), [1], {"a": 1}])
def test_expires_at_rejects(value: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        parse_expires_at(value)


@pytest.mark.parametrize("fmt", ["timestamp", "iso", "epoch_s", "epoch_ms"])
def test_expires_at_round_trips_in_its_own_format(fmt: str) -> None:
    written = format_expires_at(EPOCH, fmt)  # type: ignore[arg-type]
    parsed, found = parse_expires_at(written)
    assert found == fmt
    assert parsed == pytest.approx(EPOCH, abs=1)


def _doc(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "userId": "1001",
        "login": "TestBot",
        "accessToken": "tok_SECRET_canary_access",
        "refreshToken": "tok_SECRET_canary_refresh",
        "expiresAt": MOMENT,
        "scopes": ["chat:read", "chat:edit"],
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def test_record_from_document() -> None:
    record = record_from_document("twitch_tokens/testbot", "testbot", _doc(userId=1001))
    assert record.user_id == "1001"
    assert record.login == "testbot"
    assert record.scopes == ("chat:read", "chat:edit")
    assert record.expires_at == pytest.approx(EPOCH)
    assert "SECRET" not in repr(record)


def test_record_login_defaults_to_document_id() -> None:
    record = record_from_document("c/somebot", "somebot", _doc(login=None))
    assert record.login == "somebot"


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"accessToken": None}, "accessToken"),
        ({"accessToken": ""}, "accessToken"),
        ({"refreshToken": 12}, "refreshToken"),
        ({"expiresAt": None}, "expiresAt"),
        ({"expiresAt": "soon"}, "expiresAt"),
    ],
)
def test_invalid_documents_name_the_field_not_the_secret(
    overrides: dict[str, object], field_name: str
) -> None:
    with pytest.raises(StoreError) as info:
        record_from_document("c/testbot", "testbot", _doc(**overrides))
    assert info.value.code == DOCUMENT_INVALID
    assert field_name in str(info.value)
    assert "SECRET" not in str(info.value)


def test_lease_is_read() -> None:
    until = MOMENT + timedelta(seconds=30)
    record = record_from_document("c/x", "x", _doc(refreshLease={"owner": "a", "expiresAt": until}))
    assert record.lease_owner == "a"
    assert record.lease_active(EPOCH, "b")
    assert not record.lease_active(EPOCH, "a")
    assert not record.lease_active(EPOCH + 31, "b")


def test_login_lookup_normalizes() -> None:
    assert LoginLookup().normalize(" #TestBot ") == "testbot"
    for bad in ("", "a/b", "..", "__x__"):
        with pytest.raises(StoreError) as info:
            LoginLookup().normalize(bad)
        assert info.value.code == INVALID_IDENTITY


def test_lookup_strategy_names() -> None:
    assert isinstance(lookup_strategy("login"), LoginLookup)
    assert isinstance(lookup_strategy("user_id"), UserIdLookup)
    with pytest.raises(ValueError):
        lookup_strategy("email")
