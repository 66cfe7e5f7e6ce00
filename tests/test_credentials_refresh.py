"""The credentials provider's refresh logic over the in-memory ``TokenStore``.

The same provider runs over real Firestore in ``test_credentials_firestore.py`` (emulator);
here the store is ``MemoryTokenStore``, so the decisions (adopt, wait, refresh, commit or
yield to another writer) are checked in milliseconds, with races made deterministic. The
Twitch side is the OAuth mock (a real HTTP server on loopback).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from ingress_egress.credentials import CredentialsError
from ingress_egress.credentials.errors import DOCUMENT_MISSING, REFRESH_TOKEN_INVALID
from ingress_egress.credentials.firestore_provider import (
    FirestoreCredentialsProvider,
    ProviderOptions,
)
from ingress_egress.credentials.memory_store import MemoryTokenStore
from ingress_egress.credentials.token_store import (
    LEASE_FIELD,
    Plan,
    TokenRecord,
    UserIdLookup,
    commit_replaces,
    format_expires_at,
    plan_claim,
)
from ingress_egress.credentials.twitch_oauth import RetryPolicy, TwitchOAuthClient
from tests.support.twitch_oauth_mock import TwitchOAuthMock, oauth_mock_fixture

pytestmark = pytest.mark.timeout(60)

LOGIN = "membot"
USER_ID = "2002"
OPTIONS = ProviderOptions(
    retry_initial=0.05,
    retry_max=0.2,
    force_refresh_min_interval=0,
    refresh_lease=5.0,
    lease_poll_interval=0.02,
    min_tick=0.01,
    max_tick=0.5,
)

twitch = oauth_mock_fixture()
MakeProvider = Callable[..., FirestoreCredentialsProvider]


@pytest.fixture
async def make(twitch: TwitchOAuthMock) -> AsyncIterator[MakeProvider]:
    made: list[FirestoreCredentialsProvider] = []

    def factory(
        store: MemoryTokenStore, *, instance_id: str | None = None, **options: Any
    ) -> FirestoreCredentialsProvider:
        oauth = TwitchOAuthClient(
            twitch.base_url,
            twitch.client_id,
            twitch.client_secret,
            timeout=1.0,
            retry=RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02, max_elapsed=2.0),
        )
        provider = FirestoreCredentialsProvider(
            oauth=oauth,
            identities=(),
            options=replace(OPTIONS, **options),
            instance_id=instance_id,
            run_background=False,
            store=store,
        )
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.close()


def seed(store: MemoryTokenStore, twitch: TwitchOAuthMock, *, expires_in: float) -> tuple[str, str]:
    """A grant from the mock, stored as the oauth-flow service stores it (ISO expiry)."""
    access, refresh = twitch.issue(USER_ID, LOGIN, expires_in=max(1, int(expires_in)))
    store.put(
        LOGIN,
        {
            "userId": USER_ID,
            "login": LOGIN,
            "accessToken": access,
            "refreshToken": refresh,
            "expiresAt": format_expires_at(time.time() + expires_in, "iso"),
            "scopes": ["chat:read"],
        },
    )
    return access, refresh


def counters(provider: FirestoreCredentialsProvider) -> dict[str, int]:
    return dict(provider.status()["identities"][LOGIN]["counters"])


async def test_a_token_near_expiry_is_refreshed_and_the_rotation_stored(
    twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    store = MemoryTokenStore()
    old_access, old_refresh = seed(store, twitch, expires_in=60)  # inside the 300 s margin
    provider = make(store)

    auth = await provider.get_chat_auth(LOGIN)
    doc = store.document(LOGIN)
    assert doc is not None
    assert auth.access_token != old_access and twitch.access_valid(auth.access_token)
    assert doc["accessToken"] == auth.access_token
    assert doc["refreshToken"] != old_refresh and twitch.refresh_valid(doc["refreshToken"])
    assert isinstance(doc["expiresAt"], str)  # the document's own format is kept
    assert LEASE_FIELD not in doc and doc["refreshedBy"] == provider.instance_id
    # Good for hours now: answered from memory.
    for _ in range(3):
        assert (await provider.get_chat_auth(LOGIN)).access_token == auth.access_token
    assert twitch.token_calls == 1


async def test_two_instances_with_a_lease_spend_a_single_use_refresh_token_once(
    twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    twitch.single_use_refresh_tokens = True
    twitch.token_delay = 0.1
    store = MemoryTokenStore()
    seed(store, twitch, expires_in=60)
    a, b = make(store, instance_id="a"), make(store, instance_id="b")

    auth_a, auth_b = await asyncio.gather(a.get_chat_auth(LOGIN), b.get_chat_auth(LOGIN))
    assert auth_a.access_token == auth_b.access_token
    assert twitch.token_calls == 1 and twitch.refreshes_granted == 1
    pairs = sorted((counters(p)["refreshes"], counters(p)["adoptions"]) for p in (a, b))
    assert pairs == [(0, 1), (1, 0)]
    assert LEASE_FIELD not in (store.document(LOGIN) or {})


async def test_without_a_lease_the_second_commit_yields_to_the_first(
    twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    twitch.token_delay = 0.1  # both refreshes are out at Twitch together
    store = MemoryTokenStore()
    seed(store, twitch, expires_in=60)
    a = make(store, instance_id="a", refresh_lease=None)
    b = make(store, instance_id="b", refresh_lease=None)

    auth_a, auth_b = await asyncio.gather(a.get_chat_auth(LOGIN), b.get_chat_auth(LOGIN))
    doc = store.document(LOGIN) or {}
    assert twitch.refreshes_granted == 2  # both went to Twitch ...
    assert auth_a.access_token == auth_b.access_token == doc["accessToken"]  # ... one won
    assert twitch.refresh_valid(doc["refreshToken"])


async def test_a_lease_left_by_a_crashed_instance_is_waited_out_then_taken(
    twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    store = MemoryTokenStore()
    provider = make(store)
    old_access, _ = seed(store, twitch, expires_in=60)
    doc = store.document(LOGIN) or {}
    lease_until = time.time() + 0.3
    doc[LEASE_FIELD] = {"owner": "crashed", "expiresAt": datetime.fromtimestamp(lease_until, UTC)}
    store.put(LOGIN, doc)

    auth = await provider.get_chat_auth(LOGIN)
    assert time.time() >= lease_until  # it waited for the lease to run out
    assert auth.access_token != old_access and twitch.token_calls == 1
    assert (store.document(LOGIN) or {}).get(LEASE_FIELD) is None


async def test_a_revoked_refresh_token_degrades_serves_the_cache_and_releases_the_lease(
    twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    store = MemoryTokenStore()
    access, refresh = seed(store, twitch, expires_in=120)
    twitch.revoke_refresh(refresh)
    provider = make(store)
    await provider.start()

    assert (await provider.get_chat_auth(LOGIN)).access_token == access  # still valid 2 min
    status = provider.status()
    assert (status["state"], status["reason"]) == ("degraded", REFRESH_TOKEN_INVALID)
    assert LEASE_FIELD not in (store.document(LOGIN) or {})
    assert refresh not in repr(status) and access not in repr(store)


async def test_a_missing_document_is_a_clear_error_and_a_new_one_is_picked_up(
    twitch: TwitchOAuthMock, make: MakeProvider
) -> None:
    store = MemoryTokenStore(lookup=UserIdLookup())
    provider = make(store)
    with pytest.raises(CredentialsError) as info:
        await provider.get_chat_auth(USER_ID)
    assert info.value.code == DOCUMENT_MISSING and USER_ID in str(info.value)

    access, _ = seed(store, twitch, expires_in=14_400)
    await asyncio.sleep(OPTIONS.retry_max)  # past the retry backoff
    assert (await provider.get_chat_auth(USER_ID)).access_token == access


def _record(access: str, valid_for: float, *, lease_owner: str | None = None) -> TokenRecord:
    now = time.time()
    return TokenRecord(
        path="t/x",
        user_id="1",
        login="x",
        access_token=access,
        refresh_token=access + "-r",
        expires_at=now + valid_for,
        lease_owner=lease_owner,
        lease_until=now + 30 if lease_owner else None,
    )


def test_the_claim_decisions_both_stores_share() -> None:
    now = time.time()
    good, near = _record("a", 3600), _record("a", 60)
    decide = {"owner": "me", "margin": 300.0, "lease_seconds": 45.0}
    assert plan_claim(good, None, now, force=False, **decide) is Plan.ADOPT
    assert plan_claim(good, good, now, force=True, **decide) is Plan.REFRESH  # ours: forced
    assert plan_claim(_record("b", 3600), good, now, force=True, **decide) is Plan.ADOPT
    assert plan_claim(near, near, now, force=False, **decide) is Plan.REFRESH
    leased = _record("a", 60, lease_owner="other")
    assert plan_claim(leased, near, now, force=False, **decide) is Plan.WAIT
    assert plan_claim(leased, near, now, force=False, **{**decide, "lease_seconds": None}) is (
        Plan.REFRESH
    )
    # A commit writes over the tokens it refreshed from, or over a replacement near expiry.
    assert commit_replaces(near, near, now, 300.0)
    assert commit_replaces(_record("b", 60), near, now, 300.0)
    assert not commit_replaces(_record("b", 3600), near, now, 300.0)
