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
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from google.cloud.firestore import AsyncClient

from ingress_egress.credentials.base import ChatAuth, CredentialsError, CredentialsProvider
from ingress_egress.credentials.errors import (
    ACCESS_TOKEN_INVALID,
    CLOSED,
    DOCUMENT_MISSING,
    INTERNAL_ERROR,
    REFRESH_CONTENDED,
    REFRESH_TOKEN_INVALID,
    OAuthError,
    StoreError,
    fingerprint,
)
from ingress_egress.credentials.firestore_client import FirestoreConnection
from ingress_egress.credentials.maintenance import MaintenanceScheduler
from ingress_egress.credentials.provider_status import identity_status, overall
from ingress_egress.credentials.refresh_state import (
    IdentityState,
    ProviderOptions,
    RefreshStates,
    SkipRound,
)
from ingress_egress.credentials.scrubbing import SecretMemory
from ingress_egress.credentials.token_store import (
    LookupStrategy,
    Plan,
    TokenRecord,
    TokenStore,
    lookup_strategy,
)
from ingress_egress.credentials.twitch_oauth import TwitchOAuthClient

__all__ = ["FALLBACK_TOKEN_LIFETIME", "FirestoreCredentialsProvider", "ProviderOptions"]

log = logging.getLogger("ingress_egress.credentials.firestore")

# Used when Twitch's refresh answer has no expires_in and /validate cannot tell either.
FALLBACK_TOKEN_LIFETIME = 3600.0


class FirestoreCredentialsProvider(CredentialsProvider):
    """Twitch user tokens from a Firestore document, refreshed through Twitch OAuth.

    The I/O of each step lives here (claim, refresh, commit, validate); what is known about
    each identity and what is due, in ``RefreshStates``; ``status()`` in provider_status.py;
    the background task in ``MaintenanceScheduler``; the Firestore client in
    ``FirestoreConnection``."""

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
        self._collection = collection
        if store is not None:
            lookup = store.lookup
        self._lookup = lookup_strategy(lookup) if isinstance(lookup, str) else lookup
        self._identities = tuple(identities)
        self._opts = options or ProviderOptions()
        self._store: TokenStore[Any] | None = store
        self._firestore = FirestoreConnection(
            project=project or None,
            collection=collection,
            lookup=self._lookup,
            client=firestore_client,
            timeout=firestore_timeout,
            retry_window=firestore_retry_window,
            clock=clock,
        )
        self.instance_id = instance_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._clock = clock
        self._run_background = run_background
        self._secrets = SecretMemory()
        self._scheduler = MaintenanceScheduler(self.maintain, self._due_in)
        self._states = RefreshStates(
            self._lookup, self._opts, clock, self._secrets, self._scheduler.wake
        )
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
            entry = self._states.state_for(key)
            async with entry.lock:
                await self._attempt(entry, self._ensure_fresh)
        if self._run_background:
            self._scheduler.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._scheduler.stop()
        await self._oauth.aclose()
        await self._firestore.close()
        self._store = None

    # -- the CredentialsProvider API ---------------------------------------------------

    async def get_chat_auth(self, login_or_user_id: str) -> ChatAuth:
        self._check_open()
        entry = self._states.state_for(login_or_user_id)
        auth = self._states.fresh_auth(entry)
        if auth is not None:
            return auth
        async with entry.lock:
            auth = self._states.fresh_auth(entry)
            if auth is not None:
                return auth
            if entry.backing_off(self._clock()):
                return self._states.cached_or_raise(entry)  # backing off: do not hammer anything
            await self._attempt(entry, self._ensure_fresh)
            return self._states.cached_or_raise(entry)

    async def force_refresh(self, login_or_user_id: str) -> ChatAuth:
        """Twitch turned the current token down: refresh now (rate-limited).

        Within ``force_refresh_min_interval`` of the previous call nothing is refreshed: the
        current token is returned if it is not known to be bad, else ``CredentialsError
        (force_refresh_rate_limited)`` tells the caller to back off.
        """
        self._check_open()
        entry = self._states.state_for(login_or_user_id)
        left = self._states.force_limited(entry)
        if left is not None:
            log.info(
                "force_refresh for %s rate-limited: at most once per %.0fs (%.1fs left)",
                entry.key,
                self._opts.force_refresh_min_interval,
                left,
            )
            async with entry.lock:  # let an in-flight refresh land first
                pass
            return self._states.force_limited_answer(entry, left)
        async with entry.lock:
            await self._attempt(entry, self._force)
            return self._states.cached_or_raise(entry)

    def status(self) -> dict[str, Any]:
        now = self._clock()
        entries = self._states.unique()
        identities = {entry.key: identity_status(entry, now) for entry in entries}
        state, reason = overall(entries, started=self._started, closed=self._closed)
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
        for entry in self._states.unique():
            if entry.lock.locked():
                continue  # someone is already working on it
            async with entry.lock:
                await self._attempt(entry, self._maintain_entry)

    # -- core steps (called with entry.lock held) --------------------------------------

    async def _attempt(self, entry: IdentityState, step: Callable[[IdentityState], Any]) -> None:
        try:
            await step(entry)
        except CredentialsError as exc:
            self._states.failed(entry, exc)
        except Exception as exc:  # a bug must not kill the caller or the background task
            self._states.failed(
                entry, CredentialsError(INTERNAL_ERROR, f"unexpected {type(exc).__name__}")
            )
        else:
            self._states.succeeded(entry)

    async def _ensure_fresh(self, entry: IdentityState) -> None:
        if entry.pending is not None:
            await self._flush_pending(entry)
        if entry.record is None:
            await self._load(entry)
        elif entry.rejected() or self._states.near_expiry(entry.record):
            await self._refresh(entry, force=entry.rejected())

    async def _maintain_entry(self, entry: IdentityState) -> None:
        if entry.backing_off(self._clock()):
            raise SkipRound()
        if entry.pending is not None:
            await self._flush_pending(entry)
        if entry.record is None:
            await self._load(entry)
            return
        store_trouble = entry.store_trouble()
        if store_trouble:
            await self._probe(entry)
        if self._states.needs_refresh(entry):
            await self._refresh(entry, force=entry.rejected())
        elif self._states.needs_validation(entry, store_trouble):
            await self._validate(entry)

    async def _probe(self, entry: IdentityState) -> None:
        """Re-read the document after a Firestore problem: adopt a newer good token."""
        record = await self._get_store().read(await self._ref(entry))
        if not record.same_tokens(entry.record) and not self._states.near_expiry(record):
            self._states.adopt(entry, record)

    async def _force(self, entry: IdentityState) -> None:
        if entry.pending is not None:
            await self._flush_pending(entry)
        if entry.record is None:
            await self._load(entry)  # nothing of ours was turned down yet
            return
        entry.rejected_fp = fingerprint(entry.record.access_token)
        await self._refresh(entry, force=True)

    async def _load(self, entry: IdentityState) -> None:
        store = self._get_store()
        ref = await self._ref(entry)
        record = await store.read(ref)
        entry.counters["loads"] += 1
        self._states.install(entry, record, "firestore", validated=False)
        log.info(
            "loaded Twitch token for %s from %s (expires in %.0fs)",
            entry.key,
            record.path,
            record.valid_for(self._clock()),
        )
        if self._states.near_expiry(record):
            await self._refresh(entry, force=False)
        if self._opts.validate_on_load and entry.validated_at is None:
            await self._validate(entry)

    async def _refresh(self, entry: IdentityState, *, force: bool) -> None:
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
                self._states.adopt(entry, claim.record)
                return
            if claim.plan is Plan.REFRESH:
                break
            theirs = await self._wait_for_other(store, ref, claim.record, seen)
            if theirs is not None:
                self._states.adopt(entry, theirs)
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
                        self._states.adopt(entry, current)
                        return
            raise
        self._secrets.remember(grant.access_token, grant.refresh_token)
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
            self._states.refreshed(entry, fresh)
            raise
        if adopted:
            log.info("another instance refreshed %s first; using its token", entry.key)
            self._states.adopt(entry, stored)
            return
        self._states.refreshed(entry, stored)
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

    async def _flush_pending(self, entry: IdentityState) -> None:
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
            self._states.adopt(entry, stored)
        else:
            self._states.install(entry, stored, "refreshed", validated=True)
            log.info("stored the refreshed token for %s that Firestore missed earlier", entry.key)

    async def _validate(self, entry: IdentityState) -> None:
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
        return self._store if self._store is not None else self._firestore.store()

    async def _ref(self, entry: IdentityState) -> Any:
        if entry.ref is None:
            entry.ref = await self._get_store().locate(entry.key)
        return entry.ref

    def _due_in(self) -> float:
        return self._states.due_in()
