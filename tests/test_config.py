"""Configuration: defaults, tolerance, and one clear line naming the bad variable."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from ingress_egress.config import VARIABLES, ConfigError, Settings, parse_channels
from ingress_egress.config.settings import read_variable


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.bus.driver == "stdout"
    assert settings.bus.nats_url == "nats://127.0.0.1:4222"
    assert settings.bus.ingress_subject == "internal.ingress.v1"
    assert settings.reader_identity == "anonymous"
    assert str(settings.twitch.irc_url) == "ircs://irc.chat.twitch.tv:6697"
    assert (settings.twitch.reconnect_initial_ms, settings.twitch.reconnect_max_ms) == (1000, 30000)
    assert settings.delivery.max_retries == 5
    assert settings.http.port == 8080


def test_prefix_and_channels() -> None:
    settings = Settings.from_env(
        {"BUS_PREFIX": "dev.", "TWITCH_CHANNELS": " #Forsen, xqc ,,#forsen,LIRIK"}
    )
    assert settings.bus.ingress_subject == "dev.internal.ingress.v1"
    assert settings.bus.dlq_subject == "dev.internal.ingress.dlq.v1"
    assert settings.twitch.channels == ("forsen", "xqc", "lirik")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("irc://127.0.0.1:6667", "irc://127.0.0.1:6667"),
        ("ircs://irc.chat.twitch.tv", "ircs://irc.chat.twitch.tv:6697"),
        ("wss://irc-ws.chat.twitch.tv:443", "wss://irc-ws.chat.twitch.tv:443/"),
    ],
)
def test_irc_urls(url: str, expected: str) -> None:
    endpoint = Settings.from_env({"TWITCH_IRC_URL": url}).twitch.irc_url
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


def test_every_group_is_built_from_the_table_alone() -> None:
    """Each settings group's fields are exactly its table rows: a default lives in one place."""
    settings = Settings.from_env({})
    for group in dataclasses.fields(Settings):
        declared = {v.field for v in VARIABLES if v.group == group.name}
        built = {f.name for f in dataclasses.fields(getattr(settings, group.name))}
        assert declared == built, group.name
    for variable in VARIABLES:
        value = getattr(getattr(settings, variable.group), variable.field)
        assert isinstance(value, variable.kind.python_type), variable.name
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names))


def test_the_instance_id_is_generated_once_per_settings() -> None:
    settings = Settings.from_env({})
    assert settings.cluster.instance_id.startswith("ie-")
    assert settings.replace(port=0).cluster.instance_id == settings.cluster.instance_id
    assert Settings.from_env({"INSTANCE_ID": "node-1"}).cluster.instance_id == "node-1"


def test_credentials_tuning_is_read_with_the_rest() -> None:
    settings = Settings.from_env(
        {"TWITCH_TOKEN_REFRESH_LEASE_S": "0", "TWITCH_OAUTH_TIMEOUT_S": "2.5"}
    )
    assert settings.credentials.refresh_lease_s == 0.0
    assert settings.credentials.oauth_timeout_s == 2.5
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"TWITCH_OAUTH_TIMEOUT_S": "soon"})
    assert str(caught.value) == (
        "configuration error: TWITCH_OAUTH_TIMEOUT_S: must be a number of seconds, got 'soon'"
    )


def test_replace_takes_variable_names_and_checks_types() -> None:
    settings = Settings.defaults(message_bus_driver="memory", irc_connect_interval_ms=20)
    assert settings.bus.driver == "memory" and settings.irc_scale.connect_interval_ms == 20
    assert settings.spool.directory == ""  # built in code: no spool unless asked for
    with pytest.raises(TypeError):
        settings.replace(no_such_variable=1)
    with pytest.raises(TypeError):
        settings.replace(port="80")
    assert settings.replace(twitch_token_refresh_lease_s=0).credentials.refresh_lease_s == 0.0


def test_one_variable_alone() -> None:
    assert read_variable({}, "LOG_LEVEL", default="warning") == "WARNING"
    assert read_variable({"LOG_LEVEL": "debug"}, "LOG_LEVEL", default="warning") == "DEBUG"
