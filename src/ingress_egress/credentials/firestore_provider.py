"""The bot's Twitch tokens from Firestore: cached, refreshed, validated, safe across instances.

``get_chat_auth`` answers from memory while the cached token is good for more than
``refresh_margin`` seconds; otherwise it refreshes first. A refresh always goes through
the token store (a ``TokenStore``: ``FirestoreTokenStore`` when deployed, or one passed as
``store=``, e.g. ``MemoryTokenStore``): claim (with a lease), Twitch, commit, so that
instances never spend one refresh token twice (``LeasedRefresh``, leased_refresh.py).

Without Firestore nothing is refreshed (a rotated refresh token could not be stored); the
cached token is served until it expires. A background task (``start()`` / ``close()``)
validates every token at start and every ``validate_interval`` (Twitch asks for hourly),
refreshes tokens that near expiry, and retries failed identities with capped backoff.

Nothing here logs, raises or reports a token: ``status()`` carries reason codes, times and a
one-way fingerprint only.
"""

from __future__ import annotations

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
    INTERNAL_ERROR,
    OAuthError,
    fingerprint,
)
from ingress_egress.credentials.firestore_client import FirestoreConnection
from ingress_egress.credentials.leased_refresh import LeasedRefresh
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
    TokenStore,
    lookup_strategy,
)
from ingress_egress.credentials.twitch_oauth import TwitchOAuthClient

__all__ = ["FirestoreCredentialsProvider", "ProviderOptions"]

log = logging.getLogger("ingress_egress.credentials.firestore")


class FirestoreCredentialsProvider(CredentialsProvider):
    """Twitch user tokens from a Firestore document, refreshed through Twitch OAuth.

    This class runs the steps (load, probe, refresh, validate) when they are due. Where the
    rest lives: what is known about each identity and what is due, ``RefreshStates``
    (refresh_state.py, pure); one refresh across instances, ``LeasedRefresh``; ``status()``
    fields, provider_status.py; the background task, ``MaintenanceScheduler``; the client,
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
        self._refresher = LeasedRefresh(
            oauth=oauth,
            states=self._states,
            secrets=self._secrets,
            options=self._opts,
            clock=clock,
            owner=self.instance_id,
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
        await self._refresher.refresh(entry, store, await self._ref(entry), force=force)

    async def _flush_pending(self, entry: IdentityState) -> None:
        store = self._get_store()
        await self._refresher.flush_pending(entry, store, await self._ref(entry))

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
