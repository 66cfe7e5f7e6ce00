"""The refresh state machine on its own: no Firestore, no Twitch, a clock the test moves."""

from __future__ import annotations

import json
import logging
import random

import pytest
import tenacity.wait

from ingress_egress.credentials.base import CredentialsError
from ingress_egress.credentials.errors import (
    DOCUMENT_MISSING,
    FIRESTORE_UNAVAILABLE,
    FORCE_REFRESH_RATE_LIMITED,
    NOT_STARTED,
    OAUTH_UNAVAILABLE,
    TOKEN_EXPIRED,
    fingerprint,
)
from ingress_egress.credentials.provider_status import identity_status, overall
from ingress_egress.credentials.refresh_state import (
    ProviderOptions,
    RefreshStates,
    SkipRound,
)
from ingress_egress.credentials.scrubbing import SecretMemory
from ingress_egress.credentials.token_store import TokenRecord, lookup_strategy

OPTIONS = ProviderOptions(
    refresh_margin=300.0,
    validate_interval=3300.0,
    force_refresh_min_interval=60.0,
    retry_initial=5.0,
    retry_max=300.0,
    min_tick=0.05,
    max_tick=60.0,
)
SECRET = "tok_SECRET_state_"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tenacity.wait, "random", random.Random(28))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wakes() -> list[int]:
    return []


@pytest.fixture
def states(clock: Clock, wakes: list[int]) -> RefreshStates:
    return RefreshStates(
        lookup_strategy("login"), OPTIONS, clock, SecretMemory(), lambda: wakes.append(1)
    )


def record(clock: Clock, expires_in: float, n: int = 1) -> TokenRecord:
    return TokenRecord(
        path="twitch_tokens/testbot",
        user_id="1001",
        login="TestBot",
        access_token=f"{SECRET}access{n}",
        refresh_token=f"{SECRET}refresh{n}",
        expires_at=clock.now + expires_in,
        scopes=("chat:read",),
    )


def test_an_installed_token_answers_to_login_and_user_id(
    states: RefreshStates, clock: Clock, wakes: list[int]
) -> None:
    state = states.state_for("testbot")
    states.install(state, record(clock, 3600), "firestore", validated=False)
    assert states.state_for("TESTBOT") is state
    assert states.state_for("1001") is state
    assert states.unique() == [state]
    assert wakes  # the scheduler is told: validation is due now
    assert states.due_in() == OPTIONS.min_tick


def test_fresh_until_the_refresh_margin_then_cached_until_expiry(
    states: RefreshStates, clock: Clock
) -> None:
    state = states.state_for("testbot")
    states.install(state, record(clock, 3600), "firestore", validated=True)
    auth = states.fresh_auth(state)
    assert auth is not None and auth.access_token.endswith("access1")
    clock.now += 3600 - 300  # inside the margin: no longer fresh, still usable
    assert states.fresh_auth(state) is None
    assert states.cached_or_raise(state).access_token.endswith("access1")
    clock.now += 301
    with pytest.raises(CredentialsError) as info:
        states.cached_or_raise(state)
    assert info.value.code == TOKEN_EXPIRED


def test_nothing_loaded_raises_not_started(states: RefreshStates) -> None:
    with pytest.raises(CredentialsError) as info:
        states.cached_or_raise(states.state_for("testbot"))
    assert info.value.code == NOT_STARTED and "could not be loaded" in str(info.value)


def test_a_rejected_token_is_neither_fresh_nor_served(states: RefreshStates, clock: Clock) -> None:
    state = states.state_for("testbot")
    states.install(state, record(clock, 3600), "firestore", validated=True)
    state.rejected_fp = fingerprint(f"{SECRET}access1")
    assert states.fresh_auth(state) is None
    assert states.needs_refresh(state)
    with pytest.raises(CredentialsError, match="was rejected by Twitch"):
        states.cached_or_raise(state)
    states.install(state, record(clock, 3600, n=2), "refreshed", validated=True)
    assert states.fresh_auth(state) is not None  # the new token is not the rejected one


def test_failures_back_off_with_jitter_up_to_the_cap(states: RefreshStates, clock: Clock) -> None:
    state = states.state_for("testbot")
    delays = []
    for failure in range(1, 12):
        states.failed(state, CredentialsError(OAUTH_UNAVAILABLE, "Twitch answered 503"))
        delay = state.retry_at - clock.now
        assert OPTIONS.retry_initial / 2 <= delay <= min(300.0, 5.0 * 2 ** (failure - 1))
        assert state.backing_off(clock.now)
        delays.append(delay)
    assert state.failures == 11 and state.counters["failures"] == 11
    assert len(set(delays)) == len(delays)  # jittered: instances do not retry in step
    assert (state.state, state.reason) == ("degraded", OAUTH_UNAVAILABLE)
    assert states.due_in() == pytest.approx(min(60.0, delays[-1]))
    clock.now = state.retry_at
    assert not state.backing_off(clock.now)


def test_success_clears_the_failure(states: RefreshStates, clock: Clock) -> None:
    state = states.state_for("testbot")
    states.install(state, record(clock, 3600), "firestore", validated=True)
    states.failed(state, CredentialsError(FIRESTORE_UNAVAILABLE, "deadline exceeded"))
    assert state.store_trouble()
    assert not states.needs_validation(state, store_trouble=True)
    states.succeeded(state)
    assert (state.state, state.reason, state.failures, state.retry_at) == ("ok", "", 0, 0.0)
    assert not state.store_trouble()


def test_a_missing_document_is_looked_up_again(states: RefreshStates) -> None:
    state = states.state_for("testbot")
    state.ref = object()
    states.failed(state, CredentialsError(DOCUMENT_MISSING, "no document"))
    assert state.ref is None


def test_a_skipped_round_is_not_a_failure(states: RefreshStates, wakes: list[int]) -> None:
    state = states.state_for("testbot")
    states.failed(state, SkipRound())
    assert (state.state, state.failures, wakes) == ("starting", 0, [])


def test_failure_details_and_logs_are_scrubbed(
    states: RefreshStates, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state = states.state_for("testbot")
    states.install(state, record(clock, 3600), "firestore", validated=True)
    states.failed(state, CredentialsError(OAUTH_UNAVAILABLE, f"echoed {SECRET}refresh1 back"))
    assert SECRET not in state.detail and "<redacted>" in state.detail
    status = identity_status(state, clock.now)
    assert SECRET not in json.dumps(status) and SECRET not in repr(states)
    assert status["serving_cached"] and status["retry_in_s"] is not None
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert any("retrying in" in r.getMessage() for r in caplog.records)


def test_validation_is_due_after_the_interval(states: RefreshStates, clock: Clock) -> None:
    state = states.state_for("testbot")
    states.install(state, record(clock, 86_400), "firestore", validated=True)
    assert not states.needs_validation(state, store_trouble=False)
    assert states.due_in() == OPTIONS.max_tick
    clock.now += OPTIONS.validate_interval
    assert states.needs_validation(state, store_trouble=False)
    assert states.due_in() == OPTIONS.min_tick


def test_force_refresh_is_limited_to_once_per_interval(states: RefreshStates, clock: Clock) -> None:
    state = states.state_for("testbot")
    states.install(state, record(clock, 3600), "firestore", validated=True)
    assert states.force_limited(state) is None
    clock.now += 20
    assert states.force_limited(state) == pytest.approx(40.0)
    assert states.force_limited_answer(state, 40.0).access_token.endswith("access1")
    state.rejected_fp = fingerprint(f"{SECRET}access1")
    with pytest.raises(CredentialsError) as info:
        states.force_limited_answer(state, 40.0)
    assert info.value.code == FORCE_REFRESH_RATE_LIMITED
    clock.now += 40
    assert states.force_limited(state) is None
    assert state.counters["force_refreshes"] == 2
    assert state.counters["force_refresh_limited"] == 1


def test_adopting_keeps_an_earlier_expiry_learnt_for_the_same_tokens(
    states: RefreshStates, clock: Clock
) -> None:
    state = states.state_for("testbot")
    states.install(state, record(clock, 1000), "refreshed", validated=True)
    states.adopt(state, record(clock, 5000))  # same tokens, the document says later
    assert state.record is not None and state.record.expires_at == clock.now + 1000
    assert state.counters["adoptions"] == 0 and state.source == "refreshed"
    states.adopt(state, record(clock, 5000, n=2))
    assert state.counters["adoptions"] == 1 and state.source == "adopted"
    assert state.validated_at is None  # a new token from elsewhere is validated next


def test_overall_status_names_the_first_degraded_identity(
    states: RefreshStates, clock: Clock
) -> None:
    a, b = states.state_for("aaa"), states.state_for("bbb")
    assert overall([a, b], started=False, closed=False) == ("starting", NOT_STARTED)
    assert overall([a, b], started=True, closed=False) == ("starting", "loading")
    states.succeeded(a)
    states.failed(b, CredentialsError(DOCUMENT_MISSING, "no document"))
    assert overall([b, a], started=True, closed=False) == ("degraded", DOCUMENT_MISSING)
    states.succeeded(b)
    assert overall([a, b], started=True, closed=False) == ("ok", "")
    assert overall([a, b], started=True, closed=True)[0] == "closed"
