"""The service logging in as the bot with tokens from Firestore (real emulator), and never
leaking them: not in logs, not in ``/_debug/twitch``, not in ``/readyz``."""

from __future__ import annotations

import logging

import pytest

from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings
from ingress_egress.simulator import ChatSimulator, Faults
from tests.support.credentials import LOGIN, provider_for, store_tokens
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    firestore_client,
    firestore_emulator_fixture,
    firestore_env_fixture,
)
from tests.support.service import eventually, get, running, settings_for, wait_status
from tests.support.twitch_oauth_mock import TwitchOAuthMock, oauth_mock_fixture

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(120)]
CANARY = "tok_SECRET_canary_"


twitch = oauth_mock_fixture(token_prefix=CANARY)


async def test_bot_login_from_firestore_with_no_token_leak(
    firestore_env: FirestoreEmulator,
    twitch: TwitchOAuthMock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    # The first login is rejected: the client must force one refresh, then log in again.
    faults = Faults(reject_login=True, apply_to_first=1)
    async with ChatSimulator(count=20, rate=200, faults=faults) as sim:
        settings = settings_for(
            Settings.defaults(message_bus_driver="memory", twitch_bot_username=LOGIN),
            sim.port,
            ("one",),
        )
        provider = provider_for(firestore_env, twitch)
        async with running(settings, publisher=MemoryPublisher(), credentials=provider) as service:
            # 1. No document yet: degraded, reported, not ready, no crash loop.
            body = await wait_status(service, "/readyz", 503)
            seen.append(str(body))
            await eventually(
                lambda: any("document_missing" in r for r in service.view.readiness()),
                what="document_missing in readiness",
            )
            debug = (await get(service, "/_debug/twitch")).json()
            assert debug["credentials"]["state"] == "degraded"
            assert debug["credentials"]["reason"] == "document_missing"
            # 2. The oauth-flow service writes the tokens: the bot logs in and joins.
            await store_tokens(firestore_env, twitch)
            ready = await wait_status(service, "/readyz", 200, timeout=30)
            assert await sim.wait_sent(20, timeout=30)
            await eventually(lambda: service.counters.published >= 21, what="publishes")
            for path in ("/readyz", "/_debug/twitch", "/healthz", "/livez"):
                seen.append((await get(service, path)).text)
            seen.append(str(ready))
            assert twitch.refreshes_granted == 1  # the forced refresh after the rejection
            codes = [entry["code"] for entry in service.errors.entries]
            assert "login_failed" in codes
        assert sim.logins.count(LOGIN) == 2
    seen.append(caplog.text)
    seen.extend(record.getMessage() for record in caplog.records)
    for text in seen:
        assert CANARY not in text
