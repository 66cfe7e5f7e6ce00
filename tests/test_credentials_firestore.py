"""FirestoreCredentialsProvider against the real Firestore emulator and the Twitch OAuth mock.

Every token in this module starts with ``tok_SECRET_canary_`` (and so does the client secret);
an autouse fixture captures all logs at DEBUG (root *and* the non-propagating ``google``
logger) and fails the test if the canary shows up anywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from google.cloud.firestore import AsyncClient

from ingress_egress.config import Settings
from ingress_egress.credentials import CredentialsError, build_credentials_provider
from ingress_egress.credentials.errors import (
    DOCUMENT_AMBIGUOUS,
    DOCUMENT_INVALID,
    DOCUMENT_MISSING,
    FIRESTORE_UNAVAILABLE,
    FORCE_REFRESH_RATE_LIMITED,
    OAUTH_UNAVAILABLE,
    REFRESH_TOKEN_INVALID,
)
from ingress_egress.credentials.firestore_client import close_firestore_client
from ingress_egress.credentials.firestore_provider import (
    FirestoreCredentialsProvider,
    ProviderOptions,
)
from ingress_egress.credentials.token_store import LEASE_FIELD, format_expires_at
from ingress_egress.credentials.twitch_oauth import RetryPolicy, TwitchOAuthClient
from tests.support.firestore_emulator import (  # noqa: F401 - registers the fixtures
    FirestoreEmulator,
    TcpProxy,
    firestore_client,
    firestore_emulator_fixture,
    firestore_env_fixture,
)
from tests.support.processes import free_port
from tests.support.service import eventually
from tests.support.twitch_oauth_mock import TwitchOAuthMock, oauth_mock_fixture

pytestmark = [pytest.mark.emulator, pytest.mark.timeout(120)]

CANARY = "SECRET_canary"
TOKEN_PREFIX = f"tok_{CANARY}_"
COLLECTION = "twitch_tokens"
LOGIN = "testbot"
USER_ID = "1001"

FAST = ProviderOptions(
    refresh_margin=300.0,
    validate_interval=3300.0,
    force_refresh_min_interval=0.5,
    retry_initial=0.1,
    retry_max=0.4,
    refresh_lease=5.0,
    lease_poll_interval=0.05,
    min_tick=0.01,
    max_tick=1.0,
)
OAUTH_RETRY = RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.05, max_elapsed=5.0)


class Clock:
    """Stopped at the wall time it was made (tokens are seeded in wall time); moves only
    when the test moves it, so no backoff or interval runs out behind a test's back."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- fixtures ----------------------------------------------------------------------------


def _assert_no_canary(texts: Iterator[str] | list[str], where: str) -> None:
    for text in texts:
        assert CANARY not in text, f"a secret leaked into {where}: {text[:200]!r}"


@pytest.fixture(autouse=True)
def no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    google = logging.getLogger("google")  # does not propagate to root: listen there too
    google.addHandler(caplog.handler)
    try:
        yield
    finally:
        google.removeHandler(caplog.handler)
    _assert_no_canary(
        (r.getMessage() + (r.exc_text or "") + repr(r.args) for r in caplog.records), "logs"
    )


twitch = oauth_mock_fixture(token_prefix=TOKEN_PREFIX, client_secret=TOKEN_PREFIX + "client")


@pytest.fixture
async def db(firestore_env: FirestoreEmulator) -> AsyncIterator[AsyncClient]:
    client = firestore_env.client()
    yield client
    await close_firestore_client(client)


MakeProvider = Callable[..., FirestoreCredentialsProvider]


@pytest.fixture
async def make(
    twitch: TwitchOAuthMock, firestore_env: FirestoreEmulator
) -> AsyncIterator[MakeProvider]:
    made: list[FirestoreCredentialsProvider] = []

    def factory(
        *,
        options: ProviderOptions = FAST,
        lookup: str = "login",
        identities: tuple[str, ...] = (LOGIN,),
        clock: Callable[[], float] = time.time,
        client: AsyncClient | None = None,
        instance_id: str | None = None,
        run_background: bool = False,
        oauth_timeout: float = 1.0,
        firestore_timeout: float = 10.0,
    ) -> FirestoreCredentialsProvider:
        oauth = TwitchOAuthClient(
            twitch.base_url,
            twitch.client_id,
            twitch.client_secret,
            timeout=oauth_timeout,
            retry=OAUTH_RETRY,
        )
        provider = FirestoreCredentialsProvider(
            oauth=oauth,
            project=firestore_env.project,
            collection=COLLECTION,
            lookup=lookup,
            identities=identities,
            options=options,
            firestore_client=client,
            firestore_timeout=firestore_timeout,
            firestore_retry_window=0.3,
            instance_id=instance_id,
            clock=clock,
            run_background=run_background,
        )
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.close()


async def seed(
    db: AsyncClient,
    twitch: TwitchOAuthMock,
    *,
    expires_in: float = 14_400,
    fmt: str = "timestamp",
    doc_id: str = LOGIN,
    login: str = LOGIN,
    user_id: Any = USER_ID,
    clock: Callable[[], float] = time.time,
    twitch_expires_in: float | None = None,
) -> tuple[str, str]:
    """Issue a token pair at the mock and store it the way the oauth-flow service would."""
    lifetime = expires_in if twitch_expires_in is None else twitch_expires_in
    access, refresh = twitch.issue(str(user_id), login, expires_in=max(1, int(lifetime)))
    await (
        db.collection(COLLECTION)
        .document(doc_id)
        .set(
            {
                "userId": user_id,
                "login": login,
                "accessToken": access,
                "refreshToken": refresh,
                "expiresAt": format_expires_at(clock() + expires_in, fmt),  # type: ignore[arg-type]
                "scopes": ["chat:read", "chat:edit"],
            }
        )
    )
    return access, refresh


async def stored(db: AsyncClient, doc_id: str = LOGIN) -> dict[str, Any]:
    snapshot = await db.collection(COLLECTION).document(doc_id).get()
    return snapshot.to_dict() or {}


def ident(provider: FirestoreCredentialsProvider, key: str = LOGIN) -> dict[str, Any]:
    return provider.status()["identities"][key]


# -- loading, lookup, status ---------------------------------------------------------------


async def test_start_loads_validates_and_serves(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch)
    provider = make()
    assert provider.status()["state"] == "starting"
    await provider.start()

    auth = await provider.get_chat_auth("TestBot")
    assert (auth.access_token, auth.user_id, auth.login) == (access, USER_ID, LOGIN)
    assert twitch.validate_calls == 1 and twitch.validate_auth_headers == ["OAuth"]
    assert twitch.token_calls == 0
    assert provider.healthy

    status = provider.status()
    assert status["state"] == "ok" and status["reason"] == ""
    assert status["collection"] == COLLECTION and status["lookup"] == "login"
    entry = status["identities"][LOGIN]
    assert entry["state"] == "ok" and entry["token_source"] == "firestore"
    assert entry["document"] == f"{COLLECTION}/{LOGIN}"
    assert entry["scopes"] == ["chat:read", "chat:edit"]
    assert 14_000 < entry["expires_in_s"] <= 14_400
    assert entry["token_fingerprint"].startswith("sha256:")
    assert entry["last_validated_at"] is not None
    _assert_no_canary([json.dumps(status), repr(provider), repr(auth)], "status/repr")


@pytest.mark.parametrize("stored_user_id", ["1001", 1001])
async def test_user_id_lookup(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider, stored_user_id: Any
) -> None:
    access, _ = await seed(db, twitch, doc_id="some-random-doc-id", user_id=stored_user_id)
    provider = make(lookup="user_id", identities=(USER_ID,))
    await provider.start()
    assert provider.status()["lookup"] == "user_id"
    assert (await provider.get_chat_auth(USER_ID)).access_token == access
    # Once loaded, the document also answers to its login.
    assert (await provider.get_chat_auth("TestBot")).access_token == access
    assert ident(provider, USER_ID)["document"] == f"{COLLECTION}/some-random-doc-id"


async def test_user_id_lookup_ambiguous(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    await seed(db, twitch, doc_id="one")
    await seed(db, twitch, doc_id="two")
    provider = make(lookup="user_id", identities=(USER_ID,))
    await provider.start()
    assert provider.status()["reason"] == DOCUMENT_AMBIGUOUS
    with pytest.raises(CredentialsError) as info:
        await provider.get_chat_auth(USER_ID)
    assert info.value.code == DOCUMENT_AMBIGUOUS


async def test_lazy_load_without_start_identities(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch)
    provider = make(identities=())
    await provider.start()
    assert provider.status()["state"] == "ok"
    assert (await provider.get_chat_auth(LOGIN)).access_token == access
    assert twitch.validate_calls == 1  # validated before first use


# -- refresh -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["timestamp", "iso", "epoch_s", "epoch_ms"])
async def test_refresh_within_margin_stores_rotated_tokens_in_same_format(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider, fmt: str
) -> None:
    old_access, old_refresh = await seed(db, twitch, expires_in=120, fmt=fmt)  # < 300 s margin
    provider = make()
    await provider.start()

    auth = await provider.get_chat_auth(LOGIN)
    assert auth.access_token != old_access and twitch.access_valid(auth.access_token)
    assert twitch.token_calls == 1
    doc = await stored(db)
    assert doc["accessToken"] == auth.access_token
    assert doc["refreshToken"] != old_refresh and twitch.refresh_valid(doc["refreshToken"])
    assert LEASE_FIELD not in doc
    assert doc["refreshedBy"] == provider.instance_id
    expected_type = {"timestamp": datetime, "iso": str, "epoch_s": int, "epoch_ms": int}[fmt]
    assert isinstance(doc["expiresAt"], expected_type)
    if fmt == "epoch_ms":
        assert doc["expiresAt"] > 10**12
    entry = ident(provider)
    assert entry["token_source"] == "refreshed" and entry["counters"]["refreshes"] == 1
    assert 14_000 < entry["expires_in_s"] <= 14_400

    # Good for hours now: served from memory, no further calls.
    for _ in range(5):
        assert (await provider.get_chat_auth(LOGIN)).access_token == auth.access_token
    assert twitch.token_calls == 1


async def test_refresh_without_expires_in_asks_validate(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    twitch.include_expires_in = False
    await seed(db, twitch, expires_in=60)
    provider = make()
    await provider.start()
    assert 14_000 < ident(provider)["expires_in_s"] <= 14_400
    assert twitch.token_calls == 1 and twitch.validate_calls == 1


async def test_validate_expiry_wins_over_the_document(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    """The document says hours, Twitch says 100 s: the token is refreshed before use."""
    old_access, _ = await seed(db, twitch, expires_in=14_400, twitch_expires_in=100)
    provider = make()
    await provider.start()
    assert ident(provider)["expires_in_s"] <= 100
    auth = await provider.get_chat_auth(LOGIN)
    assert auth.access_token != old_access and twitch.token_calls == 1


async def test_expired_token_is_refreshed_before_use(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    old_access, _ = await seed(db, twitch, expires_in=-60)
    provider = make(identities=())
    await provider.start()
    auth = await provider.get_chat_auth(LOGIN)
    assert auth.access_token != old_access and twitch.access_valid(auth.access_token)


# -- failure modes -------------------------------------------------------------------------


async def test_document_missing_is_degraded_then_recovers(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    clock = Clock()
    provider = make(clock=clock)
    await provider.start()
    status = provider.status()
    assert (status["state"], status["reason"]) == ("degraded", DOCUMENT_MISSING)
    assert not provider.healthy
    with pytest.raises(CredentialsError) as info:
        await provider.get_chat_auth(LOGIN)
    assert info.value.code == DOCUMENT_MISSING

    access, _ = await seed(db, twitch)  # the oauth-flow service writes it
    await provider.maintain()  # still backing off: not looked at
    assert provider.status()["reason"] == DOCUMENT_MISSING
    clock.advance(FAST.retry_max)  # past the retry delay, whatever its jitter
    await provider.maintain()
    assert provider.status()["state"] == "ok"
    assert (await provider.get_chat_auth(LOGIN)).access_token == access


async def test_document_invalid(db: AsyncClient, make: MakeProvider) -> None:
    await (
        db.collection(COLLECTION)
        .document(LOGIN)
        .set(
            {"login": LOGIN, "accessToken": TOKEN_PREFIX + "x", "refreshToken": TOKEN_PREFIX + "y"}
        )
    )
    provider = make()
    await provider.start()
    status = provider.status()
    assert (status["state"], status["reason"]) == ("degraded", DOCUMENT_INVALID)
    assert "expiresAt" in status["identities"][LOGIN]["detail"]
    _assert_no_canary([json.dumps(status)], "status")


async def test_revoked_refresh_token_degrades_and_retries_without_crash_loop(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, refresh = await seed(db, twitch, expires_in=120)
    twitch.revoke_refresh(refresh)
    clock = Clock()
    provider = make(clock=clock)
    await provider.start()

    status = provider.status()
    assert (status["state"], status["reason"]) == ("degraded", REFRESH_TOKEN_INVALID)
    entry = status["identities"][LOGIN]
    assert entry["serving_cached"] and entry["retry_in_s"] > 0
    assert twitch.token_calls == 1
    doc = await stored(db)
    assert LEASE_FIELD not in doc  # released after the failure

    # The access token still works for 2 minutes: served, and no hammering of Twitch.
    for _ in range(20):
        assert (await provider.get_chat_auth(LOGIN)).access_token == access
    assert twitch.token_calls == 1

    # Retried periodically with backoff.
    clock.advance(FAST.retry_max)
    await provider.maintain()
    assert twitch.token_calls == 2
    assert provider.status()["reason"] == REFRESH_TOKEN_INVALID

    # The operator re-authorizes; the oauth-flow service writes new tokens; we adopt them.
    new_access, _ = await seed(db, twitch)
    clock.advance(FAST.retry_max)
    await provider.maintain()
    assert provider.status()["state"] == "ok"
    assert (await provider.get_chat_auth(LOGIN)).access_token == new_access
    assert twitch.token_calls == 2
    assert ident(provider)["counters"]["adoptions"] == 1


async def test_revoked_refresh_token_and_expired_access_token_raises(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    _, refresh = await seed(db, twitch, expires_in=-10)
    twitch.revoke_refresh(refresh)
    provider = make()
    await provider.start()
    with pytest.raises(CredentialsError) as info:
        await provider.get_chat_auth(LOGIN)
    assert info.value.code == REFRESH_TOKEN_INVALID
    assert not ident(provider)["token_usable"]


async def test_oauth_5xx_is_retried_with_backoff(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    await seed(db, twitch, expires_in=120)
    twitch.token_failures = [500, 503]
    provider = make()
    await provider.start()
    assert provider.status()["state"] == "ok"
    assert twitch.token_calls == 3 and twitch.refreshes_granted == 1


async def test_oauth_5xx_exhausted_serves_cached_token(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch, expires_in=120)
    twitch.token_failures = [503] * OAUTH_RETRY.attempts
    clock = Clock()
    provider = make(clock=clock)
    await provider.start()
    status = provider.status()
    assert (status["state"], status["reason"]) == ("degraded", OAUTH_UNAVAILABLE)
    assert status["identities"][LOGIN]["serving_cached"]
    assert twitch.token_calls == OAUTH_RETRY.attempts  # bounded
    assert (await provider.get_chat_auth(LOGIN)).access_token == access
    assert LEASE_FIELD not in await stored(db)

    clock.advance(FAST.retry_max)
    await provider.maintain()  # Twitch is back
    assert provider.status()["state"] == "ok"
    assert (await provider.get_chat_auth(LOGIN)).access_token != access


async def test_oauth_timeout_is_retried(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    await seed(db, twitch, expires_in=120)
    twitch.token_failures = ["hang"]
    provider = make(oauth_timeout=0.2)
    await provider.start()
    assert provider.status()["state"] == "ok"
    assert twitch.token_calls == 2


async def test_validate_5xx_at_start_degrades_but_serves(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch)
    twitch.validate_failures = [503] * OAUTH_RETRY.attempts
    clock = Clock()
    provider = make(clock=clock)
    await provider.start()
    assert provider.status()["reason"] == OAUTH_UNAVAILABLE
    assert (await provider.get_chat_auth(LOGIN)).access_token == access
    clock.advance(FAST.retry_max)
    await provider.maintain()
    assert provider.status()["state"] == "ok"
    assert ident(provider)["last_validated_at"] is not None


async def test_validate_401_triggers_refresh(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    clock = Clock()
    access, _ = await seed(db, twitch)
    provider = make(clock=clock)
    await provider.start()
    twitch.revoke_access(access)  # e.g. the user disconnected and re-connected the app
    clock.advance(FAST.validate_interval + 1)
    await provider.maintain()
    entry = ident(provider)
    assert entry["counters"]["validation_rejections"] == 1
    assert entry["counters"]["refreshes"] == 1
    auth = await provider.get_chat_auth(LOGIN)
    assert auth.access_token != access and twitch.access_valid(auth.access_token)
    assert (await stored(db))["accessToken"] == auth.access_token


async def test_background_task_validates_periodically_and_close_stops_it(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch)
    options = ProviderOptions(validate_interval=0.15, retry_initial=0.05, min_tick=0.01)
    provider = make(options=options, run_background=True)
    await provider.start()
    await eventually(lambda: twitch.validate_calls >= 3)

    # A token revoked at Twitch is noticed by the next validation and refreshed.
    twitch.revoke_access(access)
    await eventually(lambda: ident(provider)["counters"]["refreshes"] == 1)
    assert (await provider.get_chat_auth(LOGIN)).access_token != access

    await provider.close()
    calls = twitch.validate_calls
    # The background task is gone (not merely idle), so nothing can reach Twitch any more.
    assert "twitch-credentials-maintenance" not in {t.get_name() for t in asyncio.all_tasks()}
    assert twitch.validate_calls == calls
    assert provider.status()["state"] == "closed"
    with pytest.raises(CredentialsError):
        await provider.get_chat_auth(LOGIN)


async def test_background_task_refreshes_before_expiry(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch, expires_in=1.5)
    options = ProviderOptions(refresh_margin=1.0, retry_initial=0.05, min_tick=0.01)
    provider = make(options=options, run_background=True, identities=(LOGIN,))
    await provider.start()
    assert (await provider.get_chat_auth(LOGIN)).access_token == access
    await eventually(lambda: ident(provider)["counters"]["refreshes"] == 1, timeout=5)
    assert (await stored(db))["accessToken"] != access


# -- force_refresh -------------------------------------------------------------------------


async def test_force_refresh_refreshes_and_is_rate_limited(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch)
    clock = Clock()
    provider = make(clock=clock)
    await provider.start()

    first = await provider.force_refresh(LOGIN)
    assert first.access_token != access and twitch.token_calls == 1
    assert (await stored(db))["accessToken"] == first.access_token

    # Again right away: no refresh; the new token is returned.
    again = await provider.force_refresh(LOGIN)
    assert again.access_token == first.access_token and twitch.token_calls == 1
    assert ident(provider)["counters"]["force_refresh_limited"] == 1

    clock.advance(FAST.force_refresh_min_interval)
    second = await provider.force_refresh(LOGIN)
    assert second.access_token != first.access_token and twitch.token_calls == 2


async def test_force_refresh_concurrent_calls_refresh_once(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    access, _ = await seed(db, twitch)
    twitch.token_delay = 0.1
    provider = make()
    await provider.start()
    results = await asyncio.gather(*(provider.force_refresh(LOGIN) for _ in range(5)))
    assert {r.access_token for r in results} == {results[0].access_token}
    assert results[0].access_token != access
    assert twitch.token_calls == 1


async def test_force_refresh_adopts_token_written_by_another_writer(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    await seed(db, twitch)
    provider = make()
    await provider.start()
    newer, _ = await seed(db, twitch)  # another instance / the oauth-flow service
    auth = await provider.force_refresh(LOGIN)
    assert auth.access_token == newer
    assert twitch.token_calls == 0
    assert ident(provider)["token_source"] == "adopted"


async def test_force_refresh_with_revoked_refresh_token(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    _, refresh = await seed(db, twitch)
    provider = make()
    await provider.start()
    twitch.revoke_refresh(refresh)
    with pytest.raises(CredentialsError) as info:
        await provider.force_refresh(LOGIN)
    assert info.value.code == REFRESH_TOKEN_INVALID
    # The token was turned down by IRC: it is not served any more ...
    with pytest.raises(CredentialsError):
        await provider.get_chat_auth(LOGIN)
    # ... and the chat client is told to back off instead of looping.
    with pytest.raises(CredentialsError) as info:
        await provider.force_refresh(LOGIN)
    assert info.value.code == FORCE_REFRESH_RATE_LIMITED
    assert twitch.token_calls <= 2  # the one forced attempt (+ at most one backoff retry)
    assert provider.status()["reason"] == REFRESH_TOKEN_INVALID


# -- two instances -------------------------------------------------------------------------


async def test_race_two_instances_with_lease_refresh_once(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    """Single-use rotating refresh tokens: only one instance may spend the refresh token."""
    twitch.single_use_refresh_tokens = True
    twitch.token_delay = 0.2
    old_access, old_refresh = await seed(db, twitch, expires_in=60)
    a = make(instance_id="instance-a", identities=())
    b = make(instance_id="instance-b", identities=())
    await asyncio.gather(a.start(), b.start())

    auth_a, auth_b = await asyncio.gather(a.get_chat_auth(LOGIN), b.get_chat_auth(LOGIN))
    assert auth_a.access_token == auth_b.access_token != old_access
    assert twitch.token_calls == 1 and twitch.refreshes_granted == 1
    doc = await stored(db)
    assert doc["accessToken"] == auth_a.access_token
    assert twitch.refresh_valid(doc["refreshToken"]) and not twitch.refresh_valid(old_refresh)
    assert LEASE_FIELD not in doc
    counters = sorted(
        (ident(p)["counters"]["refreshes"], ident(p)["counters"]["adoptions"]) for p in (a, b)
    )
    assert counters == [(0, 1), (1, 0)]
    assert a.healthy and b.healthy


async def test_race_two_instances_without_lease_loser_adopts_winner(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    """No lease: both refresh at Twitch; the commit transaction lets only the first write."""
    twitch.token_delay = 0.3  # both requests are in flight together
    options = ProviderOptions(
        refresh_lease=None, retry_initial=0.1, retry_max=0.4, force_refresh_min_interval=0.5
    )
    old_access, _ = await seed(db, twitch, expires_in=60)
    a = make(instance_id="instance-a", identities=(), options=options)
    b = make(instance_id="instance-b", identities=(), options=options)

    auth_a, auth_b = await asyncio.gather(a.get_chat_auth(LOGIN), b.get_chat_auth(LOGIN))
    assert twitch.token_calls == 2 and twitch.refreshes_granted == 2
    doc = await stored(db)
    assert auth_a.access_token == auth_b.access_token == doc["accessToken"] != old_access
    counters = sorted(
        (ident(p)["counters"]["refreshes"], ident(p)["counters"]["adoptions"]) for p in (a, b)
    )
    assert counters == [(0, 1), (1, 0)]
    winner = a if ident(a)["counters"]["refreshes"] else b
    assert ident(winner)["token_fingerprint"] == ident(a if winner is b else b)["token_fingerprint"]
    # The winner's refresh token is the one stored, and it works.
    assert twitch.refresh_valid(doc["refreshToken"])


async def test_stale_lease_of_a_crashed_instance_is_taken_over(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    old_access, _ = await seed(db, twitch, expires_in=60)
    lease_until = datetime.fromtimestamp(time.time() + 0.4, UTC)
    await (
        db.collection(COLLECTION)
        .document(LOGIN)
        .update({LEASE_FIELD: {"owner": "crashed-instance", "expiresAt": lease_until}})
    )
    provider = make(identities=())
    auth = await provider.get_chat_auth(LOGIN)
    waits = [r for r in caplog.records if "another instance is refreshing" in r.getMessage()]
    assert waits  # it waited for the lease to run out before refreshing
    assert auth.access_token != old_access and twitch.token_calls == 1
    doc = await stored(db)
    assert doc["accessToken"] == auth.access_token and LEASE_FIELD not in doc


async def test_commit_adopts_when_document_changed_during_refresh(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    """Deterministic version of the race: the other writer commits while our call is out."""
    old_access, _ = await seed(db, twitch, expires_in=60)
    theirs: dict[str, str] = {}

    async def other_instance_commits(_: str) -> None:
        twitch.on_token = None
        theirs["access"], theirs["refresh"] = await seed(db, twitch)

    provider = make(identities=(), options=replace_options(refresh_lease=None))
    await provider.start()
    twitch.on_token = other_instance_commits
    auth = await provider.get_chat_auth(LOGIN)
    assert auth.access_token == theirs["access"] != old_access
    doc = await stored(db)
    assert (doc["accessToken"], doc["refreshToken"]) == (theirs["access"], theirs["refresh"])
    assert twitch.refreshes_granted == 1  # ours was granted but not written
    assert ident(provider)["counters"]["adoptions"] == 1


async def test_invalid_refresh_after_another_instance_rotated_it_adopts(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    _, old_refresh = await seed(db, twitch, expires_in=60)
    theirs: dict[str, str] = {}

    async def other_instance_won(token: str) -> None:
        twitch.on_token = None
        twitch.revoke_refresh(token)  # spent by the other instance
        theirs["access"], _ = await seed(db, twitch)

    provider = make(identities=(), options=replace_options(refresh_lease=None))
    await provider.start()
    twitch.on_token = other_instance_won
    auth = await provider.get_chat_auth(LOGIN)
    assert auth.access_token == theirs["access"]
    assert provider.status()["state"] == "ok"
    assert not twitch.refresh_valid(old_refresh)


def replace_options(**changes: Any) -> ProviderOptions:
    return replace(FAST, **changes)


# -- Firestore unreachable -----------------------------------------------------------------


async def test_firestore_unreachable_serves_cached_token_until_expiry(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider, firestore_env: FirestoreEmulator
) -> None:
    proxy = await TcpProxy("127.0.0.1", firestore_env.port).start()
    client = firestore_client(proxy.host_port, firestore_env.project)
    clock = Clock()
    try:
        access, _ = await seed(db, twitch, expires_in=3600)
        provider = make(client=client, clock=clock, firestore_timeout=1.0)
        await provider.start()
        assert provider.healthy

        await proxy.cut()  # Firestore is gone
        clock.advance(3600 - 120)  # inside the refresh margin, 2 minutes left
        assert (await provider.get_chat_auth(LOGIN)).access_token == access
        status = provider.status()
        assert (status["state"], status["reason"]) == ("degraded", FIRESTORE_UNAVAILABLE)
        entry = status["identities"][LOGIN]
        assert entry["serving_cached"] and entry["token_usable"]
        assert twitch.token_calls == 0  # never refresh what we could not store

        failures = entry["consecutive_failures"]
        assert (await provider.get_chat_auth(LOGIN)).access_token == access
        # Backing off: answered from memory, Firestore not tried again (no new failure).
        assert ident(provider)["consecutive_failures"] == failures

        clock.advance(121)  # the cached token has expired
        with pytest.raises(CredentialsError) as info:
            await provider.get_chat_auth(LOGIN)
        assert info.value.code == FIRESTORE_UNAVAILABLE
        entry = ident(provider)
        assert not entry["token_usable"] and not entry["serving_cached"]
        _assert_no_canary([str(info.value), json.dumps(provider.status())], "error/status")
    finally:
        await proxy.close()
        await close_firestore_client(client)


async def test_firestore_unreachable_at_start(twitch: TwitchOAuthMock, make: MakeProvider) -> None:
    client = firestore_client(f"127.0.0.1:{free_port()}")  # nothing listens there
    try:
        provider = make(client=client, firestore_timeout=1.0)
        started = time.monotonic()
        await provider.start()
        assert time.monotonic() - started < 3
        status = provider.status()
        assert (status["state"], status["reason"]) == ("degraded", FIRESTORE_UNAVAILABLE)
        with pytest.raises(CredentialsError) as info:
            await provider.get_chat_auth(LOGIN)
        assert info.value.code == FIRESTORE_UNAVAILABLE
    finally:
        await close_firestore_client(client)


async def test_refreshed_token_survives_a_failed_write_and_is_stored_later(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider, firestore_env: FirestoreEmulator
) -> None:
    proxy = await TcpProxy("127.0.0.1", firestore_env.port).start()
    client = firestore_client(proxy.host_port, firestore_env.project)
    try:
        old_access, _ = await seed(db, twitch)
        clock = Clock()
        provider = make(client=client, clock=clock, firestore_timeout=1.0)
        await provider.start()

        async def firestore_dies(_: str) -> None:
            twitch.on_token = None
            await proxy.cut()

        twitch.on_token = firestore_dies
        auth = await provider.force_refresh(LOGIN)  # Twitch answers, Firestore is gone
        assert auth.access_token != old_access and twitch.access_valid(auth.access_token)
        entry = ident(provider)
        assert entry["pending_write"] and entry["reason"] == FIRESTORE_UNAVAILABLE
        assert (await stored(db))["accessToken"] == old_access

        await proxy.resume()

        async def flushed() -> bool:
            clock.advance(FAST.retry_max)  # no waiting out the backoff between tries
            await provider.maintain()
            return not ident(provider)["pending_write"]

        # Polled: the gRPC channel reconnects to the resumed proxy in its own time.
        await eventually(flushed, what="the pending token written", interval=0.2)
        doc = await stored(db)
        assert doc["accessToken"] == auth.access_token
        assert twitch.refresh_valid(doc["refreshToken"])
        assert provider.status()["state"] == "ok"
    finally:
        await proxy.close()
        await close_firestore_client(client)


# -- secrets -------------------------------------------------------------------------------


async def test_canary_never_appears_in_errors_status_or_reprs(
    db: AsyncClient, twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    """Runs the flows (ok, refresh, rotate, 5xx, timeout, revoke, 401, missing document,
    force refresh and its limit) and collects every string a user could see."""
    seen: list[str] = []

    def collect(provider: FirestoreCredentialsProvider) -> None:
        seen.append(json.dumps(provider.status()))
        seen.append(repr(provider))
        seen.append(repr(provider._states))  # internal state too
        seen.append(repr(provider._get_store()))
        seen.append(repr(provider._oauth))

    async def attempt(call: Any) -> None:
        try:
            result = await call
            seen.append(repr(result))
            seen.append(str(result))
        except CredentialsError as exc:
            seen.extend([str(exc), repr(exc), exc.code, repr(exc.__cause__)])

    clock = Clock()
    provider = make(oauth_timeout=0.2, clock=clock)
    await provider.start()  # document missing
    collect(provider)
    await attempt(provider.get_chat_auth(LOGIN))

    await seed(db, twitch, expires_in=120)
    clock.advance(FAST.retry_max)
    twitch.token_failures = [500, "hang"]
    await provider.maintain()  # load + refresh through a 500 and a timeout
    collect(provider)
    await attempt(provider.get_chat_auth(LOGIN))
    await attempt(provider.force_refresh(LOGIN))
    await attempt(provider.force_refresh(LOGIN))  # rate-limited
    collect(provider)

    doc = await stored(db)
    twitch.revoke_refresh(doc["refreshToken"])
    twitch.revoke_access(doc["accessToken"])
    clock.advance(FAST.force_refresh_min_interval)
    await attempt(provider.force_refresh(LOGIN))  # refresh token revoked
    await attempt(provider.force_refresh(LOGIN))  # rate-limited, nothing usable
    await attempt(provider.get_chat_auth(LOGIN))
    collect(provider)

    await db.collection(COLLECTION).document(LOGIN).delete()
    clock.advance(FAST.retry_max)
    await provider.maintain()
    collect(provider)

    assert any(REFRESH_TOKEN_INVALID in s for s in seen)
    assert any(FORCE_REFRESH_RATE_LIMITED in s for s in seen)
    _assert_no_canary(seen, "errors/status/reprs")


# -- the factory, end to end ---------------------------------------------------------------


async def test_factory_builds_a_working_provider(
    db: AsyncClient, twitch: TwitchOAuthMock, firestore_env: FirestoreEmulator
) -> None:
    access, _ = await seed(db, twitch)
    settings = Settings.defaults(
        google_cloud_project=firestore_env.project,
        twitch_bot_username=LOGIN,
        twitch_client_id=twitch.client_id,
        twitch_client_secret=twitch.client_secret,
        twitch_oauth_url=twitch.base_url,
        firestore_tokens_collection=COLLECTION,
        firestore_emulator_host=firestore_env.host_port,
    )
    provider = build_credentials_provider(settings)
    assert isinstance(provider, FirestoreCredentialsProvider)
    await provider.start()
    try:
        assert (await provider.get_chat_auth(LOGIN)).access_token == access
        assert provider.healthy
    finally:
        await provider.close()
