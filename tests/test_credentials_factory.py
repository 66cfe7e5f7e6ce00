"""build_credentials_provider: which provider for which configuration (no I/O)."""

from __future__ import annotations

import pytest

from ingress_egress.config import ConfigError, Settings
from ingress_egress.credentials import (
    CredentialsError,
    StaticTokenProvider,
    build_credentials_provider,
)
from ingress_egress.credentials.firestore_provider import FirestoreCredentialsProvider

SECRET = "tok_SECRET_canary_static"


def settings(env: dict[str, str] | None = None, **overrides: object) -> Settings:
    """A bot's settings: ``env`` read as the environment, then ``overrides``."""
    base: dict[str, object] = {
        "twitch_bot_username": "testbot",
        "twitch_client_id": "cid",
        "twitch_client_secret": "tok_SECRET_canary_client",
        "twitch_oauth_token": SECRET,
    }
    base.update(overrides)
    return Settings.from_env({"SPOOL_DIR": "off", **(env or {})}).replace(**base)


async def test_static_provider_without_project_or_emulator() -> None:
    provider = build_credentials_provider(settings(twitch_oauth_token="oauth:" + SECRET))
    assert isinstance(provider, StaticTokenProvider)
    auth = await provider.get_chat_auth("testbot")
    assert auth.access_token == SECRET and auth.login == "testbot"
    assert provider.status() == {"state": "ok", "reason": "", "source": "env"}
    assert "SECRET" not in repr(auth)


async def test_static_provider_without_token_is_degraded() -> None:
    provider = build_credentials_provider(settings(twitch_oauth_token=""))
    assert provider.status()["reason"] == "no_token"
    with pytest.raises(CredentialsError):
        await provider.get_chat_auth("testbot")


def test_firestore_provider_when_project_is_set() -> None:
    provider = build_credentials_provider(settings(google_cloud_project="proj"))
    assert isinstance(provider, FirestoreCredentialsProvider)
    status = provider.status()
    assert status["state"] == "starting" and status["reason"] == "not_started"
    assert status["collection"] == "twitch_tokens" and status["lookup"] == "login"
    assert "SECRET" not in repr(provider) and "SECRET" not in str(status)


def test_firestore_provider_when_only_the_emulator_is_set() -> None:
    provider = build_credentials_provider(settings(env={"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"}))
    assert isinstance(provider, FirestoreCredentialsProvider)


def test_collection_and_user_id_lookup() -> None:
    provider = build_credentials_provider(
        settings(
            google_cloud_project="proj",
            firestore_tokens_collection="bots",
            firestore_lookup="user_id",
            env={"TWITCH_BOT_USER_ID": "1001"},
        ),
    )
    assert isinstance(provider, FirestoreCredentialsProvider)
    assert provider.status()["collection"] == "bots"
    assert provider.status()["lookup"] == "user_id"
    assert provider._identities == ("1001",)


@pytest.mark.parametrize("missing", ["twitch_client_id", "twitch_client_secret"])
def test_firestore_needs_client_credentials(missing: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_credentials_provider(settings(google_cloud_project="proj", **{missing: ""}))
    assert info.value.variable == missing.upper()
    assert "SECRET_canary" not in str(info.value)


def test_tuning_variables() -> None:
    provider = build_credentials_provider(
        settings(
            google_cloud_project="proj",
            env={
                "TWITCH_TOKEN_REFRESH_MARGIN_S": "120",
                "TWITCH_TOKEN_VALIDATE_INTERVAL_S": "600",
                "TWITCH_FORCE_REFRESH_MIN_INTERVAL_S": "30",
                "TWITCH_TOKEN_REFRESH_LEASE_S": "0",
            },
        )
    )
    assert isinstance(provider, FirestoreCredentialsProvider)
    opts = provider._opts
    assert (opts.refresh_margin, opts.validate_interval, opts.force_refresh_min_interval) == (
        120.0,
        600.0,
        30.0,
    )
    assert opts.refresh_lease is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TWITCH_TOKEN_VALIDATE_INTERVAL_S", "7200"),  # Twitch wants at least hourly
        ("TWITCH_TOKEN_REFRESH_MARGIN_S", "soon"),
        ("FIRESTORE_TIMEOUT_S", "0"),
    ],
)
def test_bad_tuning_variables(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({name: value})
    assert info.value.variable == name
