"""Configuration: defaults, tolerance, and one clear line naming the bad variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ingress_egress.config import ConfigError, Settings, parse_channels


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.message_bus_driver == "stdout"
    assert settings.nats_url == "nats://127.0.0.1:4222"
    assert settings.ingress_subject == "internal.ingress.v1"
    assert settings.identity == "anonymous"
    assert str(settings.twitch_irc_url) == "ircs://irc.chat.twitch.tv:6697"
    assert (settings.irc_reconnect_initial_ms, settings.irc_reconnect_max_ms) == (1000, 30000)
    assert settings.publish_max_retries == 5
    assert settings.port == 8080


def test_prefix_and_channels() -> None:
    settings = Settings.from_env(
        {"BUS_PREFIX": "dev.", "TWITCH_CHANNELS": " #Forsen, xqc ,,#forsen,LIRIK"}
    )
    assert settings.ingress_subject == "dev.internal.ingress.v1"
    assert settings.dlq_subject == "dev.internal.ingress.dlq.v1"
    assert settings.twitch_channels == ("forsen", "xqc", "lirik")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("irc://127.0.0.1:6667", "irc://127.0.0.1:6667"),
        ("ircs://irc.chat.twitch.tv", "ircs://irc.chat.twitch.tv:6697"),
        ("wss://irc-ws.chat.twitch.tv:443", "wss://irc-ws.chat.twitch.tv:443/"),
    ],
)
def test_irc_urls(url: str, expected: str) -> None:
    endpoint = Settings.from_env({"TWITCH_IRC_URL": url}).twitch_irc_url
    assert str(endpoint).rstrip("/") == expected.rstrip("/")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MESSAGE_BUS_DRIVER": "kafka"}, "MESSAGE_BUS_DRIVER"),
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"PUBLISH_MAX_RETRIES": "-1"}, "PUBLISH_MAX_RETRIES"),
        (
            {"IRC_RECONNECT_INITIAL_MS": "5000", "IRC_RECONNECT_MAX_MS": "100"},
            "IRC_RECONNECT_MAX_MS",
        ),
        ({"TWITCH_IRC_URL": "http://irc.chat.twitch.tv"}, "TWITCH_IRC_URL"),
        ({"NATS_URL": "redis://x"}, "NATS_URL"),
        ({"BUS_PREFIX": "has space."}, "BUS_PREFIX"),
        ({"BUS_PREFIX": "goog."}, "BUS_PREFIX"),
        ({"TWITCH_CHANNELS": "ok,not-a-login!"}, "TWITCH_CHANNELS"),
        ({"TWITCH_BOT_USERNAME": "bad name"}, "TWITCH_BOT_USERNAME"),
        ({"PUBSUB_CREATE_TOPIC": "maybe"}, "PUBSUB_CREATE_TOPIC"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"configuration error: {variable}: ")
    assert "\n" not in str(caught.value)


def test_secrets_are_not_in_repr() -> None:
    settings = Settings.from_env(
        {"TWITCH_CLIENT_SECRET": "s3cr3t-value", "TWITCH_OAUTH_TOKEN": "oauth:tok-value"}
    )
    assert "s3cr3t-value" not in repr(settings)
    assert "tok-value" not in repr(settings)


def test_parse_channels_empty() -> None:
    assert parse_channels("") == ()


def test_serve_exits_with_one_line_on_bad_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ingress_egress", "serve"],
        env={"PORT": "nope", "TWITCH_CLIENT_SECRET": "very-secret-123", "PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: PORT: must be a whole number, got 'nope'"
    assert "very-secret-123" not in result.stderr + result.stdout


def test_firestore_without_client_secret_is_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ingress_egress", "serve"],
        env={
            "TWITCH_BOT_USERNAME": "mybot",
            "GOOGLE_CLOUD_PROJECT": "demo-project",
            "TWITCH_CLIENT_ID": "client-id-123",
            "PATH": "/usr/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("configuration error: TWITCH_CLIENT_SECRET: ")
    assert len(result.stderr.strip().splitlines()) == 1
