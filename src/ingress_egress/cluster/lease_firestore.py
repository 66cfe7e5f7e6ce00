"""The send lease in Firestore: one document,
``ingress_egress_clusters/<CLUSTER_NAME>/leases/egress-sender``::

    {holder, term, fence, ttlSeconds, renewedAt}     holder and term null once released

Expiry is judged in the server's time only: a taker reads the document and compares the
read's time (``read_time``, the server's clock when it answered) with the document's last
write (``update_time``, the server's commit time), so no member's clock is trusted, and no
clock offset is kept. A holder's write commits after it was sent, so the lease cannot
expire before the send time plus the TTL. The TTL used is the longer of the taker's and the
one the holder wrote, so members that disagree on ``CLUSTER_MEMBER_TTL_MS`` stay safe.

Every write carries a precondition (as ``firestore_store.py`` does): ``create()`` for the
first holder ever, else the update time that was read or last written, so two takers or a
taker and a late renewal cannot both succeed. The fence is a counter in the document, one
more on every taking write; a release keeps it, so it only grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.firestore import SERVER_TIMESTAMP

from ingress_egress.bounded import bounded
from ingress_egress.cluster.firestore_store import ROOT_COLLECTION
from ingress_egress.cluster.lease import (
    LEASE_NAME,
    UNREADABLE_HOLDER,
    LeaseGrant,
    LeaseHolder,
    LeaseLost,
)
from ingress_egress.cluster.store import StoreUnavailable

log = logging.getLogger("ingress_egress.cluster.lease")

TIMEOUT_S = 3.0


class _Conflict(StoreUnavailable):
    """A precondition failed: somebody else wrote first (caught where that is an answer)."""


class FirestoreLeaseStore:
    name = "firestore"

    def __init__(self, client: Any, cluster: str, ttl_s: float, lease: str = LEASE_NAME) -> None:
        """``client``: a ``google.cloud.firestore.AsyncClient``."""
        self._client = client
        root = client.collection(ROOT_COLLECTION).document(cluster)
        self._document = root.collection("leases").document(lease)
        self._ttl_s = ttl_s
        self._changed = asyncio.Event()  # never set: the async client cannot watch; polled

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    async def start(self) -> None:
        await self._guard(self._document.get())  # reachable and allowed, or StoreUnavailable

    async def close(self) -> None:
        return None

    # -- the lease --------------------------------------------------------------------

    async def acquire(self, holder: str, term: str) -> LeaseGrant | LeaseHolder:
        snapshot = await self._guard(self._document.get())
        try:
            if not snapshot.exists:
                result = await self._guard(self._document.create(self._taken(holder, term, 1)))
                return LeaseGrant(holder, term, fence=1, version=result.update_time)
            data = snapshot.to_dict() or {}
            fence = _fence(data)
            current = data.get("holder")
            ours = (current, data.get("term")) == (holder, term)
            if current is not None and not ours and not self._expired(snapshot, data):
                return LeaseHolder(_holder_name(current), fence)
            option = self._client.write_option(last_update_time=snapshot.update_time)
            taken = self._taken(holder, term, fence + 1)
            result = await self._guard(self._document.update(taken, option=option))
        except _Conflict:  # another member won the race
            return await self._seen()
        return LeaseGrant(holder, term, fence=fence + 1, version=result.update_time)

    async def renew(self, grant: LeaseGrant) -> LeaseGrant:
        fields = {"renewedAt": SERVER_TIMESTAMP, "ttlSeconds": self._ttl_s}
        try:
            return await self._write_if_unchanged(grant, fields, grant.version)
        except _Conflict:
            pass  # somebody else wrote, or our last write went through unanswered
        snapshot = await self._guard(self._document.get())
        data = (snapshot.to_dict() or {}) if snapshot.exists else {}
        if not _is_ours(data, grant):
            holder = data.get("holder")
            raise LeaseLost(None if holder is None else _holder_name(holder), _fence(data))
        try:
            return await self._write_if_unchanged(grant, fields, snapshot.update_time)
        except _Conflict:
            raise LeaseLost(None) from None

    async def release(self, grant: LeaseGrant) -> None:
        fields = {"holder": None, "term": None, "releasedAt": SERVER_TIMESTAMP}
        try:
            await self._write_if_unchanged(grant, fields, grant.version)
            return
        except _Conflict:
            pass
        snapshot = await self._guard(self._document.get())
        if snapshot.exists and _is_ours(snapshot.to_dict() or {}, grant):
            with contextlib.suppress(_Conflict):  # taken meanwhile: not ours to free
                await self._write_if_unchanged(grant, fields, snapshot.update_time)

    async def _write_if_unchanged(
        self, grant: LeaseGrant, fields: dict[str, Any], version: Any
    ) -> LeaseGrant:
        option = self._client.write_option(last_update_time=version)
        result = await self._guard(self._document.update(fields, option=option))
        return replace(grant, version=result.update_time)

    def _taken(self, holder: str, term: str, fence: int) -> dict[str, Any]:
        return {
            "holder": holder,
            "term": term,
            "fence": fence,
            "ttlSeconds": self._ttl_s,
            "acquiredAt": SERVER_TIMESTAMP,
            "renewedAt": SERVER_TIMESTAMP,
        }

    def _expired(self, snapshot: Any, data: dict[str, Any]) -> bool:
        """Not rewritten for the TTL, in the server's time (the read's against the write's)."""
        ttl = self._ttl_s
        written = data.get("ttlSeconds")
        if isinstance(written, int | float) and written > ttl:
            ttl = float(written)  # the holder counts on its own TTL: wait for the longer
        # read_time is always set on a read answered by the server; the local clock is
        # only a fallback for a client that would not report it.
        read_at = snapshot.read_time or datetime.now(UTC)
        return bool((read_at - snapshot.update_time).total_seconds() >= ttl)

    async def _seen(self) -> LeaseHolder:
        snapshot = await self._guard(self._document.get())
        data = (snapshot.to_dict() or {}) if snapshot.exists else {}
        holder = data.get("holder")
        return LeaseHolder(None if holder is None else _holder_name(holder), _fence(data))

    # -- plumbing -------------------------------------------------------------------

    async def _guard(self, call: Any) -> Any:
        try:
            return await bounded(call, TIMEOUT_S)
        except (gexc.FailedPrecondition, gexc.Aborted, gexc.AlreadyExists, gexc.NotFound):
            raise _Conflict from None
        except TimeoutError:
            raise StoreUnavailable(f"firestore timed out after {TIMEOUT_S:g}s") from None
        except Exception as error:  # google-api, grpc, auth: say what, never the payload
            raise StoreUnavailable(f"firestore: {type(error).__name__}") from None


def _fence(data: dict[str, Any]) -> int:
    fence = data.get("fence")
    if isinstance(fence, int) and fence >= 0:
        return fence
    if data:
        log.error("lease document has no valid fence (%r); counting from 0", type(fence).__name__)
    return 0


def _holder_name(holder: Any) -> str:
    return holder if isinstance(holder, str) else UNREADABLE_HOLDER


def _is_ours(data: dict[str, Any], grant: LeaseGrant) -> bool:
    return (data.get("holder"), data.get("term"), data.get("fence")) == (
        grant.holder,
        grant.term,
        grant.fence,
    )
