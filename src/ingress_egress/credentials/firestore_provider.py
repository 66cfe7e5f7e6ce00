"""The bot's Twitch tokens from Firestore: cached, refreshed, validated, safe across instances.

``get_chat_auth`` answers from memory while the cached token is good for more than
``refresh_margin`` seconds; otherwise it refreshes first. A refresh always goes through
the token store (a ``TokenStore``: ``FirestoreTokenStore`` when deployed, or one passed as
``store=``, e.g. ``MemoryTokenStore``):

1. a *claim* re-reads the document. If another writer already stored a different token
   that is still good, that token is adopted and Twitch is not called. If another instance
   holds the refresh lease, we wait for its result. Otherwise we take the lease (a
   compare-and-set on the document's update time).
2. Twitch ``POST /token`` with the document's (freshest) refresh token.
3. a *commit* transaction re-reads the document and writes the new tokens only if they are
   still the ones we refreshed from; if someone else replaced them meanwhile (and theirs is
   still good) theirs wins and ours is dropped.

Without Firestore nothing is refreshed (a rotated refresh token could not be stored); the
cached token is served until it expires. A background task (``start()`` / ``close()``)
validates every token at start and every ``validate_interval`` (Twitch asks for hourly),
refreshes tokens that near expiry, and retries failed identities with capped backoff.

Nothing here logs, raises or reports a token: ``status()`` carries reason codes, times and a
one-way fingerprint only.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from google.auth import exceptions as auth_exc
from google.cloud.firestore import AsyncClient

from ingress_egress.credentials.base import ChatAuth, CredentialsError, CredentialsProvider
from ingress_egress.credentials.errors import (
    ACCESS_TOKEN_INVALID,
    CLOSED,
    DOCUMENT_AMBIGUOUS,
    DOCUMENT_INVALID,
    DOCUMENT_MISSING,
    FIRESTORE_DENIED,
    FIRESTORE_UNAVAILABLE,
    FORCE_REFRESH_RATE_LIMITED,
    INTERNAL_ERROR,
    NOT_STARTED,
    REFRESH_CONTENDED,
    REFRESH_TOKEN_INVALID,
    TOKEN_EXPIRED,
    OAuthError,
    StoreError,
    fingerprint,
    scrub,
)
from ingress_egress.credentials.token_store import (
    FirestoreTokenStore,
    LookupStrategy,
    Plan,
    TokenRecord,
    TokenStore,
    lookup_strategy,
)
from ingress_egress.credentials.twitch_oauth import TwitchOAuthClient

log = logging.getLogger("ingress_egress.credentials.firestore")

# Used when Twitch's refresh answer has no expires_in and /validate cannot tell either.
FALLBACK_TOKEN_LIFETIME = 3600.0
_STORE_REASONS = frozenset(
    {
        DOCUMENT_MISSING,
        DOCUMENT_INVALID,
        DOCUMENT_AMBIGUOUS,
        FIRESTORE_UNAVAILABLE,
        FIRESTORE_DENIED,
    }
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
class _Entry:
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
    counters: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "loads",
                "refreshes",
                "adoptions",
                "validations",
                "validation_rejections",
                "force_refreshes",
                "force_refresh_limited",
                "failures",
            ),
            0,
        )
    )

    def rejected(self) -> bool:
        return (
            self.record is not None
            and self.rejected_fp is not None
            and self.rejected_fp == fingerprint(self.record.access_token)
        )


class FirestoreCredentialsProvider(CredentialsProvider):
    """Twitch user tokens from a Firestore document, refreshed through Twitch OAuth."""

    def __init__(
        self,
        *,
        oauth: TwitchOAuthClient,
        project: str | None = None,
        collection: str = "twitch_tokens",
        lookup: LookupStrategy | str = "login",
        identities: Sequence[str] = (),
        options: ProviderOptions | None = None,
        firestore_client: AsyncClient | None = None,
        firestore_timeout: float = 10.0,
        firestore_retry_window: float = 3.0,
        instance_id: str | None = None,
        clock: Callable[[], float] = time.time,
        run_background: bool = True,
        store: TokenStore[Any] | None = None,
    ) -> None:
        """``store`` replaces Firestore (e.g. ``MemoryTokenStore``); ``lookup`` is then the
        store's own, and ``project``/``collection``/``firestore_*`` are not used."""
        self._oauth = oauth
        self._project = project or None
        self._collection = collection
        if store is not None:
            lookup = store.lookup
        self._lookup = lookup_strategy(lookup) if isinstance(lookup, str) else lookup
        self._identities = tuple(identities)
        self._opts = options or ProviderOptions()
        self._fs_client = firestore_client
        self._owns_fs_client = firestore_client is None
        self._fs_timeout = firestore_timeout
        self._fs_retry_window = firestore_retry_window
        self._store: TokenStore[Any] | None = store
        self.instance_id = instance_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._clock = clock
        self._run_background = run_background
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._secrets: deque[str] = deque(maxlen=64)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"FirestoreCredentialsProvider(collection={self._collection!r}, "
            f"lookup={self._lookup.name!r}, instance={self.instance_id!r})"
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Load (refresh if needed) and validate the configured identities, then start the
        background task. Failures do not raise: they show in ``status()`` and are retried."""
        if self._started:
            return
        self._started = True
        for key in self._identities:
            entry = self._entry_for(key)
            async with entry.lock:
                await self._attempt(entry, self._ensure_fresh)
        if self._run_background:
            self._task = asyncio.create_task(self._run(), name="twitch-credentials-maintenance")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._oauth.aclose()
        if self._fs_client is not None and self._owns_fs_client:
            await _close_firestore_client(self._fs_client)
            self._fs_client = None
        self._store = None

    # -- the CredentialsProvider API ---------------------------------------------------

    async def get_chat_auth(self, login_or_user_id: str) -> ChatAuth:
        self._check_open()
        entry = self._entry_for(login_or_user_id)
        auth = self._fresh_auth(entry)
        if auth is not None:
            return auth
        async with entry.lock:
            auth = self._fresh_auth(entry)
            if auth is not None:
                return auth
            if entry.state == "degraded" and self._clock() < entry.retry_at:
                return self._cached_or_raise(entry)  # backing off: do not hammer anything
            await self._attempt(entry, self._ensure_fresh)
            return self._cached_or_raise(entry)

    async def force_refresh(self, login_or_user_id: str) -> ChatAuth:
        """Twitch turned the current token down: refresh now (rate-limited).

        Within ``force_refresh_min_interval`` of the previous call nothing is refreshed: the
        current token is returned if it is not known to be bad, else ``CredentialsError
        (force_refresh_rate_limited)`` tells the caller to back off.
        """
        self._check_open()
        entry = self._entry_for(login_or_user_id)
        now = self._clock()
        interval = self._opts.force_refresh_min_interval
        if entry.last_force_at is not None and now - entry.last_force_at < interval:
            entry.counters["force_refresh_limited"] += 1
            left = interval - (now - entry.last_force_at)
            log.info(
                "force_refresh for %s rate-limited: at most once per %.0fs (%.1fs left)",
                entry.key,
                interval,
                left,
            )
            async with entry.lock:  # let an in-flight refresh land first
                pass
            record = entry.record
            if record is not None and not entry.rejected() and record.valid_for(now) > 0:
                return self._auth(record)
            raise CredentialsError(
                FORCE_REFRESH_RATE_LIMITED,
                f"force_refresh for {entry.key} is limited to once per {interval:g}s "
                f"({left:.1f}s left; last failure: {entry.reason or 'none'})",
            )
        entry.last_force_at = now
        entry.counters["force_refreshes"] += 1
        async with entry.lock:
            await self._attempt(entry, self._force)
            return self._cached_or_raise(entry)

    def status(self) -> dict[str, Any]:
        now = self._clock()
        identities = {entry.key: self._entry_status(entry, now) for entry in self._unique()}
        if self._closed:
            state, reason = "closed", CLOSED
        elif not self._started:
            state, reason = "starting", NOT_STARTED
        else:
            state, reason = "ok", ""
            entries = sorted(self._unique(), key=lambda e: e.key)
            degraded = [e for e in entries if e.state == "degraded"]
            if degraded:
                state, reason = "degraded", degraded[0].reason
            elif any(e.state == "starting" for e in entries):
                state, reason = "starting", "loading"
        return {
            "state": state,
            "reason": reason,
            "source": "firestore",
            "collection": self._collection,
            "lookup": self._lookup.name,
            "instance": self.instance_id,
            "identities": identities,
        }

    async def maintain(self) -> None:
        """One maintenance pass (what the background task runs): retry failed identities,
        flush unsaved tokens, refresh tokens nearing expiry, validate when due."""
        for entry in self._unique():
            if entry.lock.locked():
                continue  # someone is already working on it
            async with entry.lock:
                await self._attempt(entry, self._maintain_entry)

    # -- core steps (called with entry.lock held) --------------------------------------

    async def _attempt(self, entry: _Entry, step: Callable[[_Entry], Any]) -> None:
        try:
            await step(entry)
        except CredentialsError as exc:
            self._record_failure(entry, exc)
        except Exception as exc:  # a bug must not kill the caller or the background task
            self._record_failure(
                entry, CredentialsError(INTERNAL_ERROR, f"unexpected {type(exc).__name__}")
            )
        else:
            self._mark_ok(entry)

    async def _ensure_fresh(self, entry: _Entry) -> None:
        if entry.pending is not None:
            await self._flush_pending(entry)
        if entry.record is None:
            await self._load(entry)
        elif entry.rejected() or self._near_expiry(entry.record):
            await self._refresh(entry, force=entry.rejected())

    async def _maintain_entry(self, entry: _Entry) -> None:
        now = self._clock()
        if entry.state == "degraded" and now < entry.retry_at:
            raise _Skip()
        if entry.pending is not None:
            await self._flush_pending(entry)
        if entry.record is None:
            await self._load(entry)
            return
        store_trouble = entry.state == "degraded" and entry.reason in _STORE_REASONS
        if store_trouble:
            await self._probe(entry)
        if entry.rejected() or (self._opts.proactive_refresh and self._near_expiry(entry.record)):
            await self._refresh(entry, force=entry.rejected())
        elif (
            entry.validated_at is None
            or now - entry.validated_at >= self._opts.validate_interval
            or (entry.state == "degraded" and not store_trouble)
        ):
            await self._validate(entry)

    async def _probe(self, entry: _Entry) -> None:
        """Re-read the document after a Firestore problem: adopt a newer good token."""
        record = await self._get_store().read(await self._ref(entry))
        if not record.same_tokens(entry.record) and not self._near_expiry(record):
            self._adopt(entry, record)

    async def _force(self, entry: _Entry) -> None:
        if entry.pending is not None:
            await self._flush_pending(entry)
        if entry.record is None:
            await self._load(entry)  # nothing of ours was turned down yet
            return
        entry.rejected_fp = fingerprint(entry.record.access_token)
        await self._refresh(entry, force=True)

    async def _load(self, entry: _Entry) -> None:
        store = self._get_store()
        ref = await self._ref(entry)
        record = await store.read(ref)
        entry.counters["loads"] += 1
        self._install(entry, record, "firestore", validated=False)
        log.info(
            "loaded Twitch token for %s from %s (expires in %.0fs)",
            entry.key,
            record.path,
            record.valid_for(self._clock()),
        )
        if self._near_expiry(record):
            await self._refresh(entry, force=False)
        if self._opts.validate_on_load and entry.validated_at is None:
            await self._validate(entry)

    async def _refresh(self, entry: _Entry, *, force: bool) -> None:
        store = self._get_store()
        ref = await self._ref(entry)
        seen = entry.record
        margin = self._opts.refresh_margin
        lease = self._opts.refresh_lease
        claim = None
        for _ in range(max(1, self._opts.claim_rounds)):
            claim = await store.claim_refresh(
                ref, seen, owner=self.instance_id, margin=margin, force=force, lease_seconds=lease
            )
            if claim.plan is Plan.ADOPT:
                self._adopt(entry, claim.record)
                return
            if claim.plan is Plan.REFRESH:
                break
            theirs = await self._wait_for_other(store, ref, claim.record, seen)
            if theirs is not None:
                self._adopt(entry, theirs)
                return
        else:
            raise CredentialsError(
                REFRESH_CONTENDED,
                f"another instance kept the refresh lease for {entry.key}; will retry",
            )
        assert claim is not None
        used = claim.record
        log.info(
            "refreshing Twitch token for %s (%s)",
            entry.key,
            "forced" if force else f"expires in {used.valid_for(self._clock()):.0f}s",
        )
        try:
            grant = await self._oauth.refresh(used.refresh_token)
        except OAuthError as exc:
            if lease is not None:
                with contextlib.suppress(StoreError):
                    await store.release_claim(ref, self.instance_id)
            if exc.code == REFRESH_TOKEN_INVALID:
                # Perhaps another instance refreshed (and rotated it) just before us.
                with contextlib.suppress(StoreError):
                    current = await store.read(ref)
                    if not current.same_tokens(used) and current.valid_for(self._clock()) > margin:
                        self._adopt(entry, current)
                        return
            raise
        self._remember(grant.access_token, grant.refresh_token)
        fresh = used.with_tokens(
            grant.access_token,
            grant.refresh_token,
            await self._expiry_of(grant.access_token, grant.expires_in),
            grant.scopes,
        )
        try:
            stored, adopted = await store.commit_refresh(
                ref, used, fresh, owner=self.instance_id, margin=margin
            )
        except StoreError as exc:
            if exc.code == DOCUMENT_MISSING:
                raise
            # Twitch gave us new tokens but Firestore would not take them: use them and keep
            # trying to store them (the background task flushes ``pending``).
            entry.pending = (used, fresh)
            self._install(entry, fresh, "refreshed", validated=True)
            entry.refreshed_at = self._clock()
            entry.counters["refreshes"] += 1
            raise
        if adopted:
            log.info("another instance refreshed %s first; using its token", entry.key)
            self._adopt(entry, stored)
            return
        self._install(entry, stored, "refreshed", validated=True)
        entry.refreshed_at = self._clock()
        entry.counters["refreshes"] += 1
        log.info(
            "refreshed Twitch token for %s (now %s, expires in %.0fs)",
            entry.key,
            fingerprint(stored.access_token),
            stored.valid_for(self._clock()),
        )

    async def _wait_for_other(
        self,
        store: TokenStore[Any],
        ref: Any,
        current: TokenRecord,
        seen: TokenRecord | None,
    ) -> TokenRecord | None:
        """Another instance holds the lease: poll until its token lands (return it) or the
        lease is released or runs out (return ``None`` so we claim again)."""
        lease_left = max(0.0, (current.lease_until or 0.0) - self._clock())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lease_left + self._opts.lease_poll_interval
        log.info("another instance is refreshing %s; waiting up to %.1fs", ref.path, lease_left)
        while loop.time() < deadline:
            await asyncio.sleep(self._opts.lease_poll_interval)
            record = await store.read(ref)
            now = self._clock()
            if not record.same_tokens(seen) and record.valid_for(now) > self._opts.refresh_margin:
                return record
            if not record.lease_active(now, self.instance_id):
                return None
        return None

    async def _flush_pending(self, entry: _Entry) -> None:
        assert entry.pending is not None
        used, fresh = entry.pending
        stored, adopted = await self._get_store().commit_refresh(
            await self._ref(entry),
            used,
            fresh,
            owner=self.instance_id,
            margin=self._opts.refresh_margin,
        )
        entry.pending = None
        if adopted:
            self._adopt(entry, stored)
        else:
            self._install(entry, stored, "refreshed", validated=True)
            log.info("stored the refreshed token for %s that Firestore missed earlier", entry.key)

    async def _validate(self, entry: _Entry) -> None:
        record = entry.record
        assert record is not None
        try:
            info = await self._oauth.validate(record.access_token)
        except OAuthError as exc:
            if exc.code != ACCESS_TOKEN_INVALID:
                raise
            entry.counters["validation_rejections"] += 1
            entry.rejected_fp = fingerprint(record.access_token)
            log.warning("Twitch /validate rejected the token for %s; refreshing", entry.key)
            await self._refresh(entry, force=True)
            return
        now = self._clock()
        entry.counters["validations"] += 1
        entry.validated_at = now
        entry.validated_login = info.login
        if record.user_id and info.user_id and info.user_id != record.user_id:
            log.warning(
                "token for %s belongs to user id %s, the document says %s",
                entry.key,
                info.user_id,
                record.user_id,
            )
        if info.expires_in > 0 and now + info.expires_in < record.expires_at - 1:
            # Twitch knows best: trust its (earlier) expiry for this token.
            entry.record = replace(record, expires_at=now + info.expires_in)
        log.debug("validated token for %s (expires in %ds)", entry.key, info.expires_in)

    async def _expiry_of(self, access_token: str, expires_in: int | None) -> float:
        if expires_in is not None and expires_in > 0:
            return self._clock() + expires_in
        try:
            info = await self._oauth.validate(access_token)
            if info.expires_in > 0:
                return self._clock() + info.expires_in
        except OAuthError as exc:
            log.warning("could not learn the new token's lifetime: %s", exc.code)
        return self._clock() + FALLBACK_TOKEN_LIFETIME

    # -- helpers -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise CredentialsError(CLOSED, "the credentials provider is closed")

    def _get_store(self) -> TokenStore[Any]:
        if self._store is None:
            if self._fs_client is None:
                try:
                    self._fs_client = AsyncClient(project=self._project)
                except auth_exc.GoogleAuthError as exc:
                    raise StoreError(
                        FIRESTORE_DENIED,
                        f"cannot create the Firestore client ({type(exc).__name__}); "
                        "set GOOGLE_APPLICATION_CREDENTIALS or FIRESTORE_EMULATOR_HOST",
                    ) from None
                except Exception as exc:
                    raise StoreError(
                        FIRESTORE_UNAVAILABLE,
                        f"cannot create the Firestore client ({type(exc).__name__})",
                    ) from None
            _quiet_payload_logging()
            self._store = FirestoreTokenStore(
                self._fs_client,
                self._collection,
                self._lookup,
                timeout=self._fs_timeout,
                retry_window=self._fs_retry_window,
                clock=self._clock,
            )
        return self._store

    async def _ref(self, entry: _Entry) -> Any:
        if entry.ref is None:
            entry.ref = await self._get_store().locate(entry.key)
        return entry.ref

    def _entry_for(self, login_or_user_id: str) -> _Entry:
        key = self._lookup.normalize(login_or_user_id)
        entry = self._entries.get((self._lookup.name, key))
        if entry is None:
            # Once a document is loaded it answers to both its login and its user id.
            other = "user_id" if self._lookup.name == "login" else "login"
            alias = key.lower() if other == "login" else key
            entry = self._entries.get((other, alias))
        if entry is None:
            entry = _Entry(key=key)
            self._entries[(self._lookup.name, key)] = entry
        return entry

    def _unique(self) -> list[_Entry]:
        seen: dict[int, _Entry] = {}
        for entry in self._entries.values():
            seen.setdefault(id(entry), entry)
        return list(seen.values())

    def _near_expiry(self, record: TokenRecord) -> bool:
        return record.valid_for(self._clock()) <= self._opts.refresh_margin

    def _fresh_auth(self, entry: _Entry) -> ChatAuth | None:
        record = entry.record
        if record is None or entry.rejected() or self._near_expiry(record):
            return None
        return self._auth(record)

    def _cached_or_raise(self, entry: _Entry) -> ChatAuth:
        """The cached token while it has not expired (even if degraded), else the failure."""
        record = entry.record
        if record is not None and not entry.rejected() and record.valid_for(self._clock()) > 0:
            return self._auth(record)
        code = entry.reason or (TOKEN_EXPIRED if record is not None else NOT_STARTED)
        what = "was rejected by Twitch" if entry.rejected() else "has expired"
        if record is None:
            what = "could not be loaded"
        raise CredentialsError(
            code, f"no usable Twitch token for {entry.key}: it {what} ({entry.detail or code})"
        )

    @staticmethod
    def _auth(record: TokenRecord) -> ChatAuth:
        return ChatAuth(
            access_token=record.access_token, user_id=record.user_id, login=record.login
        )

    def _install(self, entry: _Entry, record: TokenRecord, source: str, *, validated: bool) -> None:
        same = entry.record is not None and entry.record.access_token == record.access_token
        entry.record = record
        entry.source = source
        if validated:
            entry.validated_at = self._clock()
        elif not same:
            entry.validated_at = None
        self._remember(record.access_token, record.refresh_token)
        if record.login:
            self._entries.setdefault(("login", record.login.lower()), entry)
        if record.user_id:
            self._entries.setdefault(("user_id", record.user_id), entry)
        self._wake.set()

    def _adopt(self, entry: _Entry, record: TokenRecord) -> None:
        same = entry.record is not None and entry.record.same_tokens(record)
        if same and entry.record is not None and entry.record.expires_at < record.expires_at:
            record = replace(record, expires_at=entry.record.expires_at)  # keep what we learnt
        self._install(entry, record, entry.source if same else "adopted", validated=False)
        if not same:
            entry.counters["adoptions"] += 1
            log.info(
                "using the token stored for %s by another writer (%s, expires in %.0fs)",
                entry.key,
                fingerprint(record.access_token),
                record.valid_for(self._clock()),
            )

    def _remember(self, *secrets: str) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _record_failure(self, entry: _Entry, exc: CredentialsError) -> None:
        if isinstance(exc, _Skip):
            return
        now = self._clock()
        entry.failures += 1
        entry.counters["failures"] += 1
        delay = min(self._opts.retry_max, self._opts.retry_initial * 2 ** (entry.failures - 1))
        entry.retry_at = now + delay
        if exc.code == DOCUMENT_MISSING:
            entry.ref = None  # look it up again next time (user-id lookups may move)
        detail = self._scrub(str(exc))
        changed = entry.state != "degraded" or entry.reason != exc.code
        entry.state, entry.reason, entry.detail = "degraded", exc.code, detail
        serving = (
            entry.record is not None and not entry.rejected() and entry.record.valid_for(now) > 0
        )
        log.log(
            logging.WARNING if changed else logging.DEBUG,
            "Twitch credentials for %s degraded: %s: %s; %s; retrying in %.1fs",
            entry.key,
            exc.code,
            detail,
            "serving the cached token until it expires" if serving else "no usable token",
            delay,
        )
        self._wake.set()

    def _mark_ok(self, entry: _Entry) -> None:
        if entry.state != "ok":
            log.info("Twitch credentials for %s ok (token from %s)", entry.key, entry.source)
        entry.state, entry.reason, entry.detail = "ok", "", ""
        entry.failures, entry.retry_at = 0, 0.0

    def _entry_status(self, entry: _Entry, now: float) -> dict[str, Any]:
        record = entry.record
        valid = record is not None and not entry.rejected() and record.valid_for(now) > 0
        return {
            "state": entry.state,
            "reason": entry.reason,
            "detail": entry.detail,
            "login": record.login if record else "",
            "user_id": record.user_id if record else "",
            "document": record.path if record else "",
            "token_source": entry.source,
            "token_fingerprint": fingerprint(record.access_token) if record else None,
            "token_usable": valid,
            "serving_cached": entry.state == "degraded" and valid,
            "expires_at": _iso(record.expires_at) if record else None,
            "expires_in_s": round(record.valid_for(now)) if record else None,
            "scopes": list(record.scopes) if record else [],
            "last_validated_at": _iso(entry.validated_at),
            "last_refreshed_at": _iso(entry.refreshed_at),
            "pending_write": entry.pending is not None,
            "consecutive_failures": entry.failures,
            "retry_in_s": (
                round(max(0.0, entry.retry_at - now), 1) if entry.state == "degraded" else None
            ),
            "counters": dict(entry.counters),
        }

    # -- background task ---------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            self._wake.clear()
            try:
                await self.maintain()
            except Exception as exc:  # never let the task die
                log.error("credentials maintenance failed: %s", type(exc).__name__)
            delay = self._next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _next_delay(self) -> float:
        now = self._clock()
        due = now + self._opts.max_tick
        for entry in self._unique():
            if entry.lock.locked():
                continue
            if entry.state == "degraded":
                due = min(due, entry.retry_at)
                continue
            record = entry.record
            if record is None or entry.pending is not None or entry.rejected():
                due = now
                continue
            if self._opts.proactive_refresh:
                due = min(due, record.expires_at - self._opts.refresh_margin)
            validated = entry.validated_at
            due = min(due, now if validated is None else validated + self._opts.validate_interval)
        return min(self._opts.max_tick, max(self._opts.min_tick, due - now))


class _Skip(CredentialsError):
    """Internal: nothing to do this round (the entry is backing off)."""

    def __init__(self) -> None:
        super().__init__("skip", "backing off")


# The Firestore transport logs whole request/response payloads - token writes included - when
# its logger is enabled for DEBUG. Unless someone configured that logger on purpose, keep it
# at INFO so a service-wide LOG_LEVEL=DEBUG cannot leak tokens that way.
_PAYLOAD_LOGGER = "google.cloud.firestore_v1.services.firestore"


def _quiet_payload_logging() -> None:
    payload_log = logging.getLogger(_PAYLOAD_LOGGER)
    if payload_log.level == logging.NOTSET:
        payload_log.setLevel(logging.INFO)


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")


async def _close_firestore_client(client: AsyncClient) -> None:
    """Close the gRPC channel of a Firestore client we created (no public API for that)."""
    api = getattr(client, "_firestore_api_internal", None)
    transport = getattr(api, "transport", None) if api is not None else None
    if transport is None:
        return
    with contextlib.suppress(Exception):
        result = transport.close()
        if inspect.isawaitable(result):
            await result
