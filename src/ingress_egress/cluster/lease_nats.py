"""The send lease in a NATS JetStream key-value bucket, ``<CLUSTER_NAME>-leases``.

One key per lease (``egress-sender``), its value ``{holder, term, fence, ttlSeconds}``. The
bucket's TTL (``CLUSTER_MEMBER_TTL_MS``) is the lease's: nats-server removes a value that
was not rewritten within it, by its own clock, so a dead holder's lease disappears without
any member's clock being trusted. Every write is conditioned on the key's revision:

* take: ``create`` (refused while a value exists) or, for our own value, ``update`` on its
  revision; the fence is the revision of that write. Revisions are the bucket stream's
  sequence numbers and only grow, through deletes and expiries alike, so every holder's
  fence is greater than any before it. (Deleting the bucket starts them again: do not.)
* renew: ``update`` on the revision we wrote last;
* release: ``delete`` on that revision (a delete marker: the next ``create`` succeeds).

A write whose answer was lost (a timeout) may still have been applied: the next conditioned
write then fails, and the value is read to see whether it is still ours (same holder and
term) before it is written again. No expiry markers: a taker only needs the key gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KV_DEL, KV_PURGE

from ingress_egress.bus.nats_kv import describe_error, kv_call
from ingress_egress.cluster.lease import (
    LEASE_NAME,
    UNREADABLE_HOLDER,
    LeaseGrant,
    LeaseHolder,
    LeaseLost,
    decode_value,
    encode_value,
)
from ingress_egress.cluster.store import StoreUnavailable

log = logging.getLogger("ingress_egress.cluster.lease")

REQUEST_TIMEOUT_S = 3.0


def lease_bucket(cluster: str) -> str:
    return f"{cluster}-leases"


class NatsLeaseStore:
    name = "nats"

    def __init__(self, url: str, cluster: str, ttl_s: float, key: str = LEASE_NAME) -> None:
        self.url = url
        self.bucket = lease_bucket(cluster)
        self.key = key
        self._ttl_s = ttl_s
        self._nc: Any = None
        self._kv: Any = None  # nats.js.kv.KeyValue
        self._changed = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    async def start(self) -> None:
        if self._kv is not None:
            return
        try:
            self._nc = await asyncio.wait_for(self._connect(), 2 * REQUEST_TIMEOUT_S)
            js = self._nc.jetstream(timeout=REQUEST_TIMEOUT_S)
            self._kv = await self._bucket(js)
            self._ttl_s = await self._bucket_ttl()
        except StoreUnavailable:
            await self.close()
            raise
        except Exception as error:
            await self.close()
            raise StoreUnavailable(f"lease store {self.url}: {describe_error(error)}") from None
        self._watcher = asyncio.create_task(self._watch(self._kv), name="lease-watch")

    async def _connect(self) -> Any:
        return await nats.connect(
            self.url,
            name="ingress-egress-lease",
            connect_timeout=REQUEST_TIMEOUT_S,
            max_reconnect_attempts=-1,  # the store comes back: keep trying, forever
            reconnect_time_wait=0.5,
            error_cb=_quiet,
        )

    async def _bucket(self, js: Any) -> Any:
        try:
            return await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            config = KeyValueConfig(
                bucket=self.bucket, history=1, ttl=self._ttl_s, storage=StorageType.FILE
            )
            return await js.create_key_value(config)

    async def _bucket_ttl(self) -> float:
        """The TTL the server applies, whatever we were configured with: a holder's safety
        is measured against this one (members that disagree on the TTL stay safe)."""
        status = await self._kv.status()
        ttl = status.ttl
        if not ttl:
            raise StoreUnavailable(
                f"bucket {self.bucket} has no TTL: a dead holder would never expire"
            )
        if abs(ttl - self._ttl_s) > 1e-3:
            log.warning(
                "lease bucket %s expires values after %gs, not the configured %gs: using %gs",
                self.bucket,
                ttl,
                self._ttl_s,
                ttl,
            )
        return float(ttl)

    async def _watch(self, bucket: Any) -> None:
        """Wake the keeper when the lease is released, so a follower takes it at once
        rather than at its next heartbeat. Only a hint: the keeper polls anyway, so a watch
        interrupted by a reconnect delays a takeover by a heartbeat at most."""
        while True:
            try:
                watcher = await bucket.watch(self.key, meta_only=True)
                try:
                    async for entry in watcher:
                        if entry is not None and entry.operation in (KV_DEL, KV_PURGE):
                            self._changed.set()
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the server restarting: watch again shortly
                log.debug("lease watch interrupted: %s", describe_error(error))
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), REQUEST_TIMEOUT_S)
        self._nc = self._kv = None

    @property
    def _store(self) -> Any:
        if self._kv is None:
            raise StoreUnavailable("lease store not connected")
        return self._kv

    # -- the lease --------------------------------------------------------------------

    async def acquire(self, holder: str, term: str) -> LeaseGrant | LeaseHolder:
        entry = await self._entry()
        value = encode_value(holder, term, 0, self._ttl_s)  # fence: this write's revision
        try:
            if entry is None:
                revision = await self._call(self._store.create(self.key, value))
            else:
                seen = _seen(entry)
                if not _is_ours(entry, holder, term):
                    return seen
                revision = await self._call(
                    self._store.update(self.key, value, last=entry.revision)
                )
        except _Exists:  # another member won the race
            entry = await self._entry()
            return LeaseHolder(None) if entry is None else _seen(entry)
        # The fence is the revision of the taking write; readers of that value (fence 0)
        # take its revision, and renewals write it in.
        return LeaseGrant(holder, term, fence=revision, version=revision)

    async def renew(self, grant: LeaseGrant) -> LeaseGrant:
        value = encode_value(grant.holder, grant.term, grant.fence, self._ttl_s)
        try:
            revision = await self._call(self._store.update(self.key, value, last=grant.version))
            return replace(grant, version=revision)
        except _Exists:
            pass  # somebody else wrote, or our last write went through unanswered
        entry = await self._entry()
        if entry is None:
            raise LeaseLost(None)
        if not _is_ours(entry, grant.holder, grant.term):
            seen = _seen(entry)
            raise LeaseLost(seen.holder, seen.fence)
        try:
            revision = await self._call(self._store.update(self.key, value, last=entry.revision))
        except _Exists:
            raise LeaseLost(None) from None
        return replace(grant, version=revision)

    async def release(self, grant: LeaseGrant) -> None:
        try:
            await self._call(self._store.delete(self.key, last=grant.version))
            return
        except _Exists:
            pass
        entry = await self._entry()
        if entry is not None and _is_ours(entry, grant.holder, grant.term):
            with contextlib.suppress(_Exists):  # taken meanwhile: not ours to free
                await self._call(self._store.delete(self.key, last=entry.revision))

    async def _entry(self) -> Any:
        """The key's current entry, or None when it is absent, deleted or expired."""
        try:
            return await self._call(self._store.get(self.key))
        except _Missing:
            return None

    # -- errors -------------------------------------------------------------------------

    async def _call(self, awaitable: Any) -> Any:
        return await kv_call(
            awaitable,
            timeout_s=REQUEST_TIMEOUT_S,
            exists=_Exists,
            unavailable=StoreUnavailable,
            missing=_Missing,
        )


class _Missing(StoreUnavailable):
    """No value (caught where absence is an answer)."""


class _Exists(StoreUnavailable):
    """A conditioned write lost: somebody wrote since the revision it named."""


def _is_ours(entry: Any, holder: str, term: str) -> bool:
    body = decode_value(entry.value)
    return body is not None and (body.get("holder"), body.get("term")) == (holder, term)


def _seen(entry: Any) -> LeaseHolder:
    body = decode_value(entry.value)
    if body is None:
        return LeaseHolder(UNREADABLE_HOLDER, int(entry.revision))
    fence = body.get("fence")
    # the taking write has no fence in it yet: it is that write's own revision
    return LeaseHolder(
        body["holder"], fence if isinstance(fence, int) and fence else entry.revision
    )


async def _quiet(error: Exception) -> None:
    log.debug("lease store connection: %s", describe_error(error))
