"""Token documents kept in memory, with the semantics of ``FirestoreTokenStore``.

The documents have the Firestore shape (camelCase fields, ``expiresAt`` in any of the
accepted formats, ``refreshLease`` while someone refreshes), are found by the same
``LookupStrategy``, read by the same ``record_from_document`` and decided on by the same
``plan_claim`` / ``commit_replaces``. Writes are compare-and-set on a per-document version,
with a yield to the event loop between the read and the write, so two providers sharing one
store race the way two instances sharing a Firestore document do. Tests use it to exercise
the provider's refresh logic without the emulator; the emulator tests run the same logic
against real Firestore.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ingress_egress.credentials.errors import (
    DOCUMENT_AMBIGUOUS,
    DOCUMENT_MISSING,
    REFRESH_CONTENDED,
    StoreError,
)
from ingress_egress.credentials.token_store import (
    LEASE_FIELD,
    LeasedClaims,
    LoginLookup,
    LookupStrategy,
    TokenRecord,
    commit_replaces,
    committed,
    record_from_document,
    refreshed_fields,
)


@dataclass(frozen=True, slots=True)
class MemoryRef:
    """A document of a ``MemoryTokenStore``: its id and ``collection/id`` path."""

    id: str
    path: str


class MemoryTokenStore(LeasedClaims[MemoryRef, int]):
    """Token documents of one collection, in memory (see the module docstring)."""

    def __init__(
        self,
        collection: str = "twitch_tokens",
        lookup: LookupStrategy | None = None,
        *,
        transaction_attempts: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collection = collection
        self._lookup = lookup or LoginLookup()
        self._attempts = transaction_attempts
        self._claim_attempts = transaction_attempts
        self._clock = clock
        self._documents: dict[str, dict[str, Any]] = {}
        self._versions: dict[str, int] = {}
        self.writes = 0  # documents written by the provider (claims, commits, releases)

    def __repr__(self) -> str:
        return f"MemoryTokenStore(collection={self.collection!r}, lookup={self.lookup.name!r})"

    @property
    def lookup(self) -> LookupStrategy:
        return self._lookup

    # -- what the oauth-flow service (or a test) does -----------------------------------

    def put(self, doc_id: str, data: Mapping[str, Any]) -> None:
        """Write a whole document, as the oauth-flow service does."""
        self._documents[doc_id] = copy.deepcopy(dict(data))
        self._versions[doc_id] = self._versions.get(doc_id, 0) + 1

    def document(self, doc_id: str) -> dict[str, Any] | None:
        """A copy of the stored document, or ``None``."""
        data = self._documents.get(doc_id)
        return copy.deepcopy(data) if data is not None else None

    def delete(self, doc_id: str) -> None:
        self._documents.pop(doc_id, None)
        self._versions.pop(doc_id, None)

    # -- the TokenStore protocol ----------------------------------------------------------

    def normalize(self, key: str) -> str:
        return self.lookup.normalize(key)

    async def locate(self, key: str) -> MemoryRef:
        key = self.lookup.normalize(key)
        found = [d for d, data in self._documents.items() if self.lookup.matches(d, data, key)]
        if len(found) > 1:
            raise StoreError(
                DOCUMENT_AMBIGUOUS,
                f"more than one document in {self.collection} has {self.lookup.name} == {key}",
            )
        if not found and self.lookup.name != "login":  # a login names its document
            raise StoreError(
                DOCUMENT_MISSING,
                f"no token document in {self.collection} for {self.lookup.name} {key}",
            )
        doc_id = found[0] if found else key
        return MemoryRef(doc_id, f"{self.collection}/{doc_id}")

    async def read(self, ref: MemoryRef) -> TokenRecord:
        return self._snapshot(ref)[0]

    async def _claim_snapshot(self, ref: MemoryRef) -> tuple[TokenRecord, int]:
        return self._snapshot(ref)

    async def _claim_set_lease(self, ref: MemoryRef, version: int, lease: dict[str, Any]) -> bool:
        return await self._update_if_unchanged(ref, version, {LEASE_FIELD: lease})

    async def commit_refresh(
        self, ref: MemoryRef, used: TokenRecord, fresh: TokenRecord, *, owner: str, margin: float
    ) -> tuple[TokenRecord, bool]:
        for _ in range(self._attempts):
            current, version = self._snapshot(ref)
            if commit_replaces(current, used, self._clock(), margin):
                fields = refreshed_fields(current, fresh, owner)
                fields.update(
                    {LEASE_FIELD: None, "refreshedAt": datetime.fromtimestamp(self._clock(), UTC)}
                )
                if await self._update_if_unchanged(ref, version, fields):
                    return committed(current, fresh), False
                continue
            drop_lease = current.lease_owner == owner
            if drop_lease and not await self._update_if_unchanged(
                ref, version, {LEASE_FIELD: None}
            ):
                continue
            return replace(current, lease_owner=None, lease_until=None), True
        raise StoreError(REFRESH_CONTENDED, f"the token document {ref.path} kept changing")

    async def release_claim(self, ref: MemoryRef, owner: str) -> None:
        for _ in range(self._attempts):
            data = self._documents.get(ref.id)
            lease = data.get(LEASE_FIELD) if data is not None else None
            if not isinstance(lease, Mapping) or lease.get("owner") != owner:
                return
            if await self._update_if_unchanged(ref, self._versions[ref.id], {LEASE_FIELD: None}):
                return

    # -- plumbing -------------------------------------------------------------------------

    def _snapshot(self, ref: MemoryRef) -> tuple[TokenRecord, int]:
        data = self._documents.get(ref.id)
        if data is None:
            raise StoreError(DOCUMENT_MISSING, f"token document {ref.path} does not exist")
        return record_from_document(ref.path, ref.id, data), self._versions[ref.id]

    async def _update_if_unchanged(
        self, ref: MemoryRef, version: int, fields: Mapping[str, Any]
    ) -> bool:
        """Apply ``fields`` (``None`` deletes one) if the document is still ``version``."""
        await asyncio.sleep(0)  # another writer may run between our read and our write
        if ref.id not in self._documents:
            raise StoreError(DOCUMENT_MISSING, f"token document {ref.path} was deleted")
        if self._versions[ref.id] != version:
            return False
        data = self._documents[ref.id]
        for name, value in fields.items():
            if value is None:
                data.pop(name, None)
            else:
                data[name] = copy.deepcopy(value)
        self._versions[ref.id] = version + 1
        self.writes += 1
        return True
