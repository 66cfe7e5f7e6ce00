"""The refresh state machine: what the provider knows about each identity and what is due.

Pure logic: no Firestore, no Twitch, no tasks. Time comes from the injected clock, so every
transition can be driven by a test. ``FirestoreCredentialsProvider`` does the I/O (load,
refresh, validate) and reports the outcome here:

* an identity is ``starting`` until its first attempt, then ``ok`` or ``degraded``;
* a failure makes it ``degraded`` with a reason code and a retry time (the service's one
  backoff policy, ``ingress_egress.retry``); a success makes it ``ok`` and clears both;
* ``due_in()`` tells the background task when the next identity needs attention.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ingress_egress.credentials.base import ChatAuth, CredentialsError
from ingress_egress.credentials.errors import (
    DOCUMENT_AMBIGUOUS,
    DOCUMENT_INVALID,
    DOCUMENT_MISSING,
    FIRESTORE_DENIED,
    FIRESTORE_UNAVAILABLE,
    FORCE_REFRESH_RATE_LIMITED,
    NOT_STARTED,
    TOKEN_EXPIRED,
    fingerprint,
)
from ingress_egress.credentials.scrubbing import SecretMemory
from ingress_egress.credentials.token_store import LookupStrategy, TokenRecord
from ingress_egress.retry import Backoff

log = logging.getLogger("ingress_egress.credentials.firestore")

# Failures of the store itself: the next round re-reads the document before anything else.
STORE_REASONS = frozenset(
    {
        DOCUMENT_MISSING,
        DOCUMENT_INVALID,
        DOCUMENT_AMBIGUOUS,
        FIRESTORE_UNAVAILABLE,
        FIRESTORE_DENIED,
    }
)
COUNTER_NAMES = (
    "loads",
    "refreshes",
    "adoptions",
    "validations",
    "validation_rejections",
    "force_refreshes",
    "force_refresh_limited",
    "failures",
)


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """Timing knobs; every interval is in seconds so tests can shrink them."""

    refresh_margin: float = 300.0  # refresh when the token expires within this
    validate_interval: float = 3300.0  # Twitch requires at least hourly validation
    force_refresh_min_interval: float = 60.0  # force_refresh() at most once per this
    retry_initial: float = 5.0  # first retry after a failure ...
    retry_max: float = 300.0  # ... doubling up to this
    refresh_lease: float | None = 45.0  # lease length; None: no lease, CAS on commit only
    lease_poll_interval: float = 0.25  # how often a waiting instance re-reads the document
    claim_rounds: int = 3  # claim/wait rounds before giving up (refresh_contended)
    proactive_refresh: bool = True  # the background task refreshes tokens nearing expiry
    validate_on_load: bool = True  # validate a token read from Firestore before first use
    min_tick: float = 0.05
    max_tick: float = 60.0


@dataclass(eq=False)
class IdentityState:
    """Everything the provider knows about one identity."""

    key: str
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ref: Any = None  # the store's reference to the identity's document, once located
    record: TokenRecord | None = None
    source: str = ""  # firestore | refreshed | adopted
    state: str = "starting"
    reason: str = ""
    detail: str = ""
    failures: int = 0
    retry_at: float = 0.0
    validated_at: float | None = None
    validated_login: str = ""
    refreshed_at: float | None = None
    rejected_fp: str | None = None  # fingerprint of an access token Twitch turned down
    last_force_at: float | None = None
    pending: tuple[TokenRecord, TokenRecord] | None = None  # (used, fresh) not yet stored
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))

    def rejected(self) -> bool:
        return (
            self.record is not None
            and self.rejected_fp is not None
            and self.rejected_fp == fingerprint(self.record.access_token)
        )

    def usable(self, now: float) -> bool:
        """A token to serve: present, not turned down, not expired (even if degraded)."""
        record = self.record
        return record is not None and not self.rejected() and record.valid_for(now) > 0

    def backing_off(self, now: float) -> bool:
        return self.state == "degraded" and now < self.retry_at

    def store_trouble(self) -> bool:
        return self.state == "degraded" and self.reason in STORE_REASONS


class SkipRound(CredentialsError):
    """Nothing to do this round (the identity is backing off); not a failure."""

    def __init__(self) -> None:
        super().__init__("skip", "backing off")


def auth_of(record: TokenRecord) -> ChatAuth:
    return ChatAuth(access_token=record.access_token, user_id=record.user_id, login=record.login)


class RefreshStates:
    """The identities (one state each, found by login or user id) and their transitions."""

    def __init__(
        self,
        lookup: LookupStrategy,
        options: ProviderOptions,
        clock: Callable[[], float],
        secrets: SecretMemory,
        on_change: Callable[[], None],
    ) -> None:
        """``on_change`` is called when something may be due sooner (wakes the scheduler)."""
        self._lookup = lookup
        self._opts = options
        self._clock = clock
        self._secrets = secrets
        self._on_change = on_change
        self._retry = Backoff(options.retry_initial, options.retry_max)
        self._states: dict[tuple[str, str], IdentityState] = {}

    def __repr__(self) -> str:
        return f"RefreshStates({self._states!r})"

    # -- the table -----------------------------------------------------------------------

    def state_for(self, login_or_user_id: str) -> IdentityState:
        key = self._lookup.normalize(login_or_user_id)
        state = self._states.get((self._lookup.name, key))
        if state is None:
            # Once a document is loaded it answers to both its login and its user id.
            other = "user_id" if self._lookup.name == "login" else "login"
            alias = key.lower() if other == "login" else key
            state = self._states.get((other, alias))
        if state is None:
            state = IdentityState(key=key)
            self._states[(self._lookup.name, key)] = state
        return state

    def unique(self) -> list[IdentityState]:
        seen: dict[int, IdentityState] = {}
        for state in self._states.values():
            seen.setdefault(id(state), state)
        return list(seen.values())

    # -- decisions -----------------------------------------------------------------------

    def near_expiry(self, record: TokenRecord) -> bool:
        return record.valid_for(self._clock()) <= self._opts.refresh_margin

    def fresh_auth(self, state: IdentityState) -> ChatAuth | None:
        """The cached token while it is good for more than the refresh margin."""
        record = state.record
        if record is None or state.rejected() or self.near_expiry(record):
            return None
        return auth_of(record)

    def cached_or_raise(self, state: IdentityState) -> ChatAuth:
        """The cached token while it has not expired (even if degraded), else the failure."""
        record = state.record
        if record is not None and state.usable(self._clock()):
            return auth_of(record)
        code = state.reason or (TOKEN_EXPIRED if record is not None else NOT_STARTED)
        what = "was rejected by Twitch" if state.rejected() else "has expired"
        if record is None:
            what = "could not be loaded"
        raise CredentialsError(
            code, f"no usable Twitch token for {state.key}: it {what} ({state.detail or code})"
        )

    def needs_refresh(self, state: IdentityState) -> bool:
        """In the background: turned down, or (proactive refresh) nearing expiry."""
        record = state.record
        assert record is not None
        return state.rejected() or (self._opts.proactive_refresh and self.near_expiry(record))

    def needs_validation(self, state: IdentityState, store_trouble: bool) -> bool:
        """Never validated, validated too long ago, or degraded for a reason Twitch may fix."""
        validated = state.validated_at
        return (
            validated is None
            or self._clock() - validated >= self._opts.validate_interval
            or (state.state == "degraded" and not store_trouble)
        )

    def force_limited(self, state: IdentityState) -> float | None:
        """Seconds left before ``force_refresh`` may refresh again; ``None``: it may (and the
        call is counted as the latest)."""
        now = self._clock()
        interval = self._opts.force_refresh_min_interval
        last = state.last_force_at
        if last is not None and now - last < interval:
            state.counters["force_refresh_limited"] += 1
            return interval - (now - last)
        state.last_force_at = now
        state.counters["force_refreshes"] += 1
        return None

    def force_limited_answer(self, state: IdentityState, left: float) -> ChatAuth:
        """Inside the limit: the current token if it is not known to be bad, else the error
        that tells the caller to back off."""
        record = state.record
        if record is not None and state.usable(self._clock()):
            return auth_of(record)
        interval = self._opts.force_refresh_min_interval
        raise CredentialsError(
            FORCE_REFRESH_RATE_LIMITED,
            f"force_refresh for {state.key} is limited to once per {interval:g}s "
            f"({left:.1f}s left; last failure: {state.reason or 'none'})",
        )

    def due_in(self) -> float:
        """Seconds until the next identity needs the background task (within the ticks)."""
        opts = self._opts
        now = self._clock()
        due = now + opts.max_tick
        for state in self.unique():
            if state.lock.locked():
                continue
            if state.state == "degraded":
                due = min(due, state.retry_at)
                continue
            record = state.record
            if record is None or state.pending is not None or state.rejected():
                due = now
                continue
            if opts.proactive_refresh:
                due = min(due, record.expires_at - opts.refresh_margin)
            validated = state.validated_at
            due = min(due, now if validated is None else validated + opts.validate_interval)
        return min(opts.max_tick, max(opts.min_tick, due - now))

    # -- transitions ---------------------------------------------------------------------

    def install(
        self, state: IdentityState, record: TokenRecord, source: str, *, validated: bool
    ) -> None:
        """``record`` becomes the identity's token; it answers to its login and user id."""
        same = state.record is not None and state.record.access_token == record.access_token
        state.record = record
        state.source = source
        if validated:
            state.validated_at = self._clock()
        elif not same:
            state.validated_at = None
        self._secrets.remember(record.access_token, record.refresh_token)
        if record.login:
            self._states.setdefault(("login", record.login.lower()), state)
        if record.user_id:
            self._states.setdefault(("user_id", record.user_id), state)
        self._on_change()

    def adopt(self, state: IdentityState, record: TokenRecord) -> None:
        """Take the token another writer stored (keeping an expiry we learnt for it)."""
        current = state.record
        same = current is not None and current.same_tokens(record)
        if same and current is not None and current.expires_at < record.expires_at:
            record = replace(record, expires_at=current.expires_at)  # keep what we learnt
        self.install(state, record, state.source if same else "adopted", validated=False)
        if not same:
            state.counters["adoptions"] += 1
            log.info(
                "using the token stored for %s by another writer (%s, expires in %.0fs)",
                state.key,
                fingerprint(record.access_token),
                record.valid_for(self._clock()),
            )

    def refreshed(self, state: IdentityState, record: TokenRecord) -> None:
        """Twitch granted ``record`` (stored or not yet)."""
        self.install(state, record, "refreshed", validated=True)
        state.refreshed_at = self._clock()
        state.counters["refreshes"] += 1

    def failed(self, state: IdentityState, exc: CredentialsError) -> None:
        if isinstance(exc, SkipRound):
            return
        now = self._clock()
        state.failures += 1
        state.counters["failures"] += 1
        delay = self._retry.delay_for(state.failures)
        state.retry_at = now + delay
        if exc.code == DOCUMENT_MISSING:
            state.ref = None  # look it up again next time (user-id lookups may move)
        detail = self._secrets.scrub(str(exc))
        changed = state.state != "degraded" or state.reason != exc.code
        state.state, state.reason, state.detail = "degraded", exc.code, detail
        log.log(
            logging.WARNING if changed else logging.DEBUG,
            "Twitch credentials for %s degraded: %s: %s; %s; retrying in %.1fs",
            state.key,
            exc.code,
            detail,
            "serving the cached token until it expires" if state.usable(now) else "no usable token",
            delay,
        )
        self._on_change()

    def succeeded(self, state: IdentityState) -> None:
        if state.state != "ok":
            log.info("Twitch credentials for %s ok (token from %s)", state.key, state.source)
        state.state, state.reason, state.detail = "ok", "", ""
        state.failures, state.retry_at = 0, 0.0
