"""TwitchOAuthClient against the programmable Twitch OAuth mock (no Firestore needed)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import pytest

from ingress_egress.credentials.errors import (
    ACCESS_TOKEN_INVALID,
    OAUTH_REJECTED,
    OAUTH_UNAVAILABLE,
    REFRESH_TOKEN_INVALID,
    OAuthError,
)
from ingress_egress.credentials.twitch_oauth import RetryPolicy, TwitchOAuthClient
from tests.support.twitch_oauth_mock import TwitchOAuthMock, oauth_mock_fixture

CANARY = "tok_SECRET_canary_"
FAST = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, max_elapsed=5.0)


twitch = oauth_mock_fixture(token_prefix=CANARY, client_secret=CANARY + "client_secret")


@pytest.fixture
async def oauth(twitch: TwitchOAuthMock) -> AsyncIterator[TwitchOAuthClient]:
    client = TwitchOAuthClient(
        twitch.base_url, twitch.client_id, twitch.client_secret, timeout=0.25, retry=FAST
    )
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def no_canary_in_logs(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert "SECRET_canary" not in text, f"secret in log: {record.name}"


async def test_refresh_returns_twitch_shape_and_rotates(
    twitch: TwitchOAuthMock, oauth: TwitchOAuthClient
) -> None:
    _, refresh = twitch.issue(scopes=("chat:read", "chat:edit"))
    grant = await oauth.refresh(refresh)
    assert twitch.access_valid(grant.access_token)
    assert grant.refresh_token != refresh and twitch.refresh_valid(grant.refresh_token)
    assert grant.expires_in == twitch.expires_in
    assert grant.scopes == ("chat:read", "chat:edit")
    assert grant.token_type == "bearer"
    form = twitch.token_forms[-1]
    assert form["grant_type"] == "refresh_token"
    assert form["client_id"] == twitch.client_id
    assert form["client_secret"] == twitch.client_secret
    assert form["refresh_token"] == refresh
    assert "SECRET" not in repr(grant) and "SECRET" not in repr(oauth)


async def test_refresh_without_rotation_keeps_refresh_token(
    twitch: TwitchOAuthMock, oauth: TwitchOAuthClient
) -> None:
    twitch.rotate_refresh_tokens = False
    twitch.include_expires_in = False
    _, refresh = twitch.issue()
    grant = await oauth.refresh(refresh)
    assert grant.refresh_token == refresh
    assert grant.expires_in is None


async def test_invalid_refresh_token_is_not_retried(
    twitch: TwitchOAuthMock, oauth: TwitchOAuthClient
) -> None:
    _, refresh = twitch.issue()
    twitch.revoke_refresh(refresh)
    with pytest.raises(OAuthError) as info:
        await oauth.refresh(refresh)
    assert info.value.code == REFRESH_TOKEN_INVALID
    assert info.value.http_status == 400
    assert "Invalid refresh token" in str(info.value)
    assert "SECRET" not in str(info.value)
    assert twitch.token_calls == 1


async def test_wrong_client_secret_is_rejected(twitch: TwitchOAuthMock) -> None:
    _, refresh = twitch.issue()
    client = TwitchOAuthClient(twitch.base_url, twitch.client_id, "wrong", retry=FAST)
    try:
        with pytest.raises(OAuthError) as info:
            await client.refresh(refresh)
    finally:
        await client.aclose()
    assert info.value.code == OAUTH_REJECTED
    assert info.value.http_status == 403


async def test_5xx_is_retried_then_succeeds(
    twitch: TwitchOAuthMock, oauth: TwitchOAuthClient
) -> None:
    _, refresh = twitch.issue()
    twitch.token_failures = [500, 503]
    grant = await oauth.refresh(refresh)
    assert twitch.access_valid(grant.access_token)
    assert twitch.token_calls == 3


async def test_5xx_retries_are_bounded(twitch: TwitchOAuthMock, oauth: TwitchOAuthClient) -> None:
    _, refresh = twitch.issue()
    twitch.token_failures = [503] * 10
    with pytest.raises(OAuthError) as info:
        await oauth.refresh(refresh)
    assert info.value.code == OAUTH_UNAVAILABLE
    assert info.value.http_status == 503
    assert twitch.token_calls == FAST.attempts


async def test_429_is_retried(twitch: TwitchOAuthMock, oauth: TwitchOAuthClient) -> None:
    access, _ = twitch.issue()
    twitch.validate_failures = [429]
    info = await oauth.validate(access)
    assert info.login == "testbot"
    assert twitch.validate_calls == 2


async def test_timeout_is_retried(twitch: TwitchOAuthMock, oauth: TwitchOAuthClient) -> None:
    _, refresh = twitch.issue()
    twitch.token_failures = ["hang"]
    started = time.monotonic()
    grant = await oauth.refresh(refresh)
    assert twitch.access_valid(grant.access_token)
    assert twitch.token_calls == 2
    assert time.monotonic() - started < 3


async def test_timeouts_give_up(twitch: TwitchOAuthMock, oauth: TwitchOAuthClient) -> None:
    access, _ = twitch.issue()
    twitch.validate_failures = ["hang"] * 5
    with pytest.raises(OAuthError) as info:
        await oauth.validate(access)
    assert info.value.code == OAUTH_UNAVAILABLE
    assert "timed out" in str(info.value)


async def test_unreachable_is_oauth_unavailable() -> None:
    from tests.support.processes import free_port

    client = TwitchOAuthClient(f"http://127.0.0.1:{free_port()}", "id", "secret", retry=FAST)
    try:
        with pytest.raises(OAuthError) as info:
            await client.validate(CANARY + "x")
    finally:
        await client.aclose()
    assert info.value.code == OAUTH_UNAVAILABLE
    assert "SECRET" not in str(info.value)


async def test_validate_uses_oauth_header_and_twitch_shape(
    twitch: TwitchOAuthMock, oauth: TwitchOAuthClient
) -> None:
    access, _ = twitch.issue(user_id="42", login="somebot", scopes=("chat:read",))
    info = await oauth.validate(access)
    assert twitch.validate_auth_headers == ["OAuth"]
    assert (info.client_id, info.login, info.user_id, info.scopes) == (
        twitch.client_id,
        "somebot",
        "42",
        ("chat:read",),
    )
    assert 0 < info.expires_in <= twitch.expires_in


async def test_validate_401(twitch: TwitchOAuthMock, oauth: TwitchOAuthClient) -> None:
    access, _ = twitch.issue()
    twitch.revoke_access(access)
    with pytest.raises(OAuthError) as info:
        await oauth.validate(access)
    assert info.value.code == ACCESS_TOKEN_INVALID
    assert info.value.http_status == 401
    assert "invalid access token" in str(info.value)
    assert twitch.validate_calls == 1
