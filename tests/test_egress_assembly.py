"""How the composition root builds the egress side from settings (no network: nothing runs)."""

from __future__ import annotations

import pytest

from ingress_egress.assembly.egress import (
    HELIX_SEND_SCOPE,
    build_egress,
    choose_transport,
    ledger,
    sends,
)
from ingress_egress.config import Settings
from ingress_egress.credentials.static import StaticTokenProvider
from ingress_egress.egress.lease import SoloLease
from ingress_egress.egress.ledger_nats import NatsLedger
from ingress_egress.status import ErrorLog

BOT = {"TWITCH_BOT_USERNAME": "pongbot", "TWITCH_OAUTH_TOKEN": "tok-1"}


def settings(**env: str) -> Settings:
    return Settings.from_env({"SPOOL_DIR": "off", **env})


@pytest.mark.parametrize(
    ("setting", "scopes", "client_id", "chosen"),
    [
        ("auto", (HELIX_SEND_SCOPE, "chat:read"), "cid", "helix"),
        ("auto", (HELIX_SEND_SCOPE,), "", "irc"),  # no client id to send with
        ("auto", ("chat:edit", "chat:read"), "cid", "irc"),  # the token may not use Helix
        ("irc", (HELIX_SEND_SCOPE,), "cid", "irc"),  # forced
        ("helix", (), "cid", "helix"),  # forced: the transport reports the missing scope
    ],
)
def test_the_transport_follows_the_token_when_auto(
    setting: str, scopes: tuple[str, ...], client_id: str, chosen: str
) -> None:
    assert choose_transport(setting, scopes, client_id) == chosen


def test_egress_runs_only_with_a_bot_and_a_bus_that_carries_commands() -> None:
    assert sends(settings(MESSAGE_BUS_DRIVER="nats", **BOT))
    assert sends(settings(MESSAGE_BUS_DRIVER="pubsub", GOOGLE_CLOUD_PROJECT="p", **BOT))
    assert not sends(settings(MESSAGE_BUS_DRIVER="nats"))  # anonymous: read-only
    assert not sends(settings(MESSAGE_BUS_DRIVER="memory", **BOT))  # no commands to take
    assert not sends(settings(MESSAGE_BUS_DRIVER="nats", EGRESS_TRANSPORT="off", **BOT))


def test_a_single_instance_holds_the_lease_itself() -> None:
    configured = settings(MESSAGE_BUS_DRIVER="nats", INSTANCE_ID="ie-one", **BOT)
    credentials = StaticTokenProvider("pongbot", "tok-1")
    runner = build_egress(
        configured, credentials, ErrorLog(), reading=tuple, on_bot_user_id=lambda _: None
    )
    assert runner is not None and isinstance(runner.lease, SoloLease)
    assert runner.echo is not None and runner.echo.timeout_s == 10.0  # EGRESS_ECHO_TIMEOUT_MS
    off = settings(MESSAGE_BUS_DRIVER="nats", EGRESS_TRANSPORT="off", **BOT)
    assert build_egress(off, credentials, ErrorLog(), reading=tuple, on_bot_user_id=print) is None


def test_each_bot_has_its_own_ledger() -> None:
    """A new holder's limiter inherits the recent sends it finds in the ledger: another
    bot's sends there would hold it back for nothing."""
    first = ledger(settings(MESSAGE_BUS_DRIVER="nats", CLUSTER_NAME="prod", **BOT))
    other = ledger(
        settings(
            MESSAGE_BUS_DRIVER="nats",
            CLUSTER_NAME="prod",
            **{**BOT, "TWITCH_BOT_USERNAME": "otherbot"},
        )
    )
    assert isinstance(first, NatsLedger) and isinstance(other, NatsLedger)
    assert first.bucket == "prod-pongbot-egress-ledger"
    assert other.bucket != first.bucket
