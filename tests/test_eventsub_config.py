"""TWITCH_SOURCE and the EventSub variables: defaults, and one clear line for each mistake."""

from __future__ import annotations

import pytest

from ingress_egress.config import ConfigError, Settings

EVENTSUB = {
    "TWITCH_SOURCE": "eventsub",
    "TWITCH_BOT_USERNAME": "testbot",
    "TWITCH_CLIENT_ID": "cid",
    "TWITCH_OAUTH_TOKEN": "sekrit-canary",
    "TWITCH_CHANNELS": "alpha,beta",
}


def test_irc_stays_the_default() -> None:
    settings = Settings.from_env({})
    assert settings.twitch.source == "irc"
    assert settings.twitch.eventsub_ws_url == "wss://eventsub.wss.twitch.tv/ws"
    assert settings.twitch.helix_url == "https://api.twitch.tv/helix"


def test_eventsub_with_everything_it_needs() -> None:
    env = EVENTSUB | {
        "TWITCH_EVENTSUB_WS_URL": "ws://127.0.0.1:8080/ws",
        "TWITCH_HELIX_URL": "http://127.0.0.1:8080/mock/",
    }
    settings = Settings.from_env(env)
    assert settings.twitch.source == "eventsub"
    assert settings.twitch.eventsub_ws_url == "ws://127.0.0.1:8080/ws"
    assert settings.twitch.helix_url == "http://127.0.0.1:8080/mock"


def test_tokens_from_firestore_are_enough() -> None:
    env = {k: v for k, v in EVENTSUB.items() if k != "TWITCH_OAUTH_TOKEN"}
    assert Settings.from_env(env | {"GOOGLE_CLOUD_PROJECT": "p"}).twitch.source == "eventsub"


@pytest.mark.parametrize(
    ("change", "variable", "words"),
    [
        ({"TWITCH_SOURCE": "pubsub"}, "TWITCH_SOURCE", "irc, eventsub"),
        ({"TWITCH_BOT_USERNAME": ""}, "TWITCH_BOT_USERNAME", "TWITCH_SOURCE=eventsub"),
        ({"TWITCH_CLIENT_ID": ""}, "TWITCH_CLIENT_ID", "TWITCH_SOURCE=eventsub"),
        ({"TWITCH_OAUTH_TOKEN": ""}, "TWITCH_OAUTH_TOKEN", "Firestore"),
        ({"TWITCH_EVENTSUB_WS_URL": "http://x/ws"}, "TWITCH_EVENTSUB_WS_URL", "ws(s) URL"),
        ({"TWITCH_HELIX_URL": "ftp://x"}, "TWITCH_HELIX_URL", "http(s) URL"),
        ({"TWITCH_OAUTH_URL": "https://id.example/auth"}, "TWITCH_OAUTH_URL", "/oauth2"),
        (
            {"TWITCH_CHANNELS": ",".join(f"c{n}" for n in range(51))},
            "TWITCH_CLIENT_SECRET",
            "conduit",
        ),
    ],
)
def test_each_mistake_names_its_variable(change: dict, variable: str, words: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(EVENTSUB | change)
    assert raised.value.variable == variable
    message = str(raised.value)
    assert "\n" not in message and words in message
    assert "sekrit-canary" not in message  # the secret is never echoed


def test_more_than_one_socket_holds_needs_only_the_client_secret() -> None:
    channels = ",".join(f"c{n}" for n in range(51))
    env = EVENTSUB | {"TWITCH_CHANNELS": channels, "TWITCH_CLIENT_SECRET": "app-secret"}
    settings = Settings.from_env(env)
    assert len(settings.twitch.channels) == 51  # read over a conduit (sources/eventsub)


def test_the_channel_limit_is_the_sources() -> None:
    from ingress_egress.config import EVENTSUB_MAX_CHANNELS
    from ingress_egress.sources.eventsub import MAX_CHANNELS

    assert EVENTSUB_MAX_CHANNELS == MAX_CHANNELS == 50
