"""One token refresh that is safe across instances: claim, spend at Twitch, commit.

1. a *claim* re-reads the document. If another writer already stored a different token that
   is still good, that token is adopted and Twitch is not called. If another instance holds
   the refresh lease, we wait for its result. Otherwise we take the lease (a compare-and-set
   on the document's update time).
2. Twitch ``POST /token`` with the document's (freshest) refresh token.
3. a *commit* transaction writes the new tokens only if the document still holds the ones we
   refreshed from; if someone else replaced them meanwhile (and theirs is still good) theirs
   wins and ours is dropped. New tokens Firestore would not take are kept as ``pending`` and
   written later (``flush_pending``).

What is learnt goes to ``RefreshStates`` (adopted, refreshed); failures are raised as
``CredentialsError`` for the provider to record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ingress_egress.credentials.base import CredentialsError
from ingress_egress.credentials.errors import (
    DOCUMENT_MISSING,
    REFRESH_CONTENDED,
    REFRESH_TOKEN_INVALID,
    OAuthError,
    StoreError,
    fingerprint,
)
from ingress_egress.credentials.refresh_state import IdentityState, ProviderOptions, RefreshStates
from ingress_egress.credentials.scrubbing import SecretMemory
from ingress_egress.credentials.token_store import Plan, TokenRecord, TokenStore
from ingress_egress.credentials.twitch_oauth import TokenGrant, TwitchOAuthClient

log = logging.getLogger("ingress_egress.credentials.firestore")

# Used when Twitch's refresh answer has no expires_in and /validate cannot tell either.
FALLBACK_TOKEN_LIFETIME = 3600.0


class LeasedRefresh:
    """Refreshes one identity's token through a ``TokenStore`` as ``owner``."""

    def __init__(
        self,
        *,
        oauth: TwitchOAuthClient,
        states: RefreshStates,
        secrets: SecretMemory,
        options: ProviderOptions,
        clock: Callable[[], float],
        owner: str,
    ) -> None:
        self._oauth = oauth
        self._states = states
        self._secrets = secrets
        self._opts = options
        self._clock = clock
        self._owner = owner

    async def refresh(
        self, entry: IdentityState, store: TokenStore[Any], ref: Any, *, force: bool
    ) -> None:
        used = await self._claim(entry, store, ref, force=force)
        if used is None:
            return  # another writer's token was adopted
        log.info(
            "refreshing Twitch token for %s (%s)",
            entry.key,
            "forced" if force else f"expires in {used.valid_for(self._clock()):.0f}s",
        )
        grant = await self._spend(entry, store, ref, used)
        if grant is None:
            return  # the refresh token was spent by another writer; its token was adopted
        self._secrets.remember(grant.access_token, grant.refresh_token)
        fresh = used.with_tokens(
            grant.access_token,
            grant.refresh_token,
            await self._expiry_of(grant.access_token, grant.expires_in),
            grant.scopes,
        )
        await self._commit(entry, store, ref, used, fresh)

    async def flush_pending(self, entry: IdentityState, store: TokenStore[Any], ref: Any) -> None:
        """Write the tokens Twitch granted but Firestore did not take at the time."""
        assert entry.pending is not None
        used, fresh = entry.pending
        stored, adopted = await store.commit_refresh(
            ref, used, fresh, owner=self._owner, margin=self._opts.refresh_margin
        )
        entry.pending = None
        if adopted:
            self._states.adopt(entry, stored)
        else:
            self._states.install(entry, stored, "refreshed", validated=True)
            log.info("stored the refreshed token for %s that Firestore missed earlier", entry.key)

    async def _claim(
        self, entry: IdentityState, store: TokenStore[Any], ref: Any, *, force: bool
    ) -> TokenRecord | None:
        """The record to refresh from (the lease is ours, if leases are used), or ``None``
        when a good token of another writer was adopted instead."""
        seen = entry.record
        for _ in range(max(1, self._opts.claim_rounds)):
            claim = await store.claim_refresh(
                ref,
                seen,
                owner=self._owner,
                margin=self._opts.refresh_margin,
                force=force,
                lease_seconds=self._opts.refresh_lease,
            )
            if claim.plan is Plan.ADOPT:
                self._states.adopt(entry, claim.record)
                return None
            if claim.plan is Plan.REFRESH:
                return claim.record
            theirs = await self._wait_for_other(store, ref, claim.record, seen)
            if theirs is not None:
                self._states.adopt(entry, theirs)
                return None
        raise CredentialsError(
            REFRESH_CONTENDED,
            f"another instance kept the refresh lease for {entry.key}; will retry",
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
            if not record.lease_active(now, self._owner):
                return None
        return None

    async def _spend(
        self, entry: IdentityState, store: TokenStore[Any], ref: Any, used: TokenRecord
    ) -> TokenGrant | None:
        """Twitch's grant for ``used``'s refresh token; ``None`` if another writer turned out
        to have spent it already (its token adopted). The lease is released on failure."""
        try:
            return await self._oauth.refresh(used.refresh_token)
        except OAuthError as exc:
            if self._opts.refresh_lease is not None:
                with contextlib.suppress(StoreError):
                    await store.release_claim(ref, self._owner)
            if exc.code == REFRESH_TOKEN_INVALID:
                # Perhaps another instance refreshed (and rotated it) just before us.
                with contextlib.suppress(StoreError):
                    current = await store.read(ref)
                    margin = self._opts.refresh_margin
                    if not current.same_tokens(used) and current.valid_for(self._clock()) > margin:
                        self._states.adopt(entry, current)
                        return None
            raise

    async def _commit(
        self,
        entry: IdentityState,
        store: TokenStore[Any],
        ref: Any,
        used: TokenRecord,
        fresh: TokenRecord,
    ) -> None:
        try:
            stored, adopted = await store.commit_refresh(
                ref, used, fresh, owner=self._owner, margin=self._opts.refresh_margin
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
