"""The bot's Twitch tokens in Firestore: find, read and transactionally update one document.

Document shape (written by the oauth-flow service; camelCase)::

    {
      "userId": "12345",            # string (an integer is accepted too)
      "login": "mybot",
      "accessToken": "...",
      "refreshToken": "...",
      "expiresAt": <when the access token expires>,
      "scopes": ["chat:read", "chat:edit"],
      # written by this service:
      "refreshLease": {"owner": "...", "expiresAt": <timestamp>},   # while one instance refreshes
      "refreshedAt": <server timestamp>, "refreshedBy": "<instance id>"
    }

``expiresAt`` may be a Firestore timestamp, an ISO-8601 string (a naive one is read as UTC) or a
number of seconds / milliseconds since the epoch (values above 10^11 are milliseconds). A write
keeps the format the document already used.

Finding the document is a ``LookupStrategy``: ``LoginLookup`` (document id = lower-cased login,
the default) or ``UserIdLookup`` (a query ``where userId == x``).

The credentials provider needs five operations of a store (``TokenStore``): locate, read,
claim a refresh, commit one, release a claim. ``FirestoreTokenStore`` is the deployed store;
``memory_store.MemoryTokenStore`` keeps the same documents in memory. Both decide with the
same functions (``plan_claim``, ``commit_replaces``), so the refresh logic tested on one is
the logic that runs on the other.

Every Firestore call is bounded (``timeout``) and mapped onto a ``StoreError`` whose code is
``firestore_unavailable`` / ``firestore_denied`` / ``document_missing`` / ``document_invalid`` /
``document_ambiguous`` / ``invalid_identity``. No message ever carries a token.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import grpc
from google.api_core import exceptions as gexc
from google.api_core.retry import AsyncRetry, if_transient_error
from google.auth import exceptions as auth_exc
from google.cloud.firestore import (
    DELETE_FIELD,
    SERVER_TIMESTAMP,
    AsyncClient,
    AsyncTransaction,
    FieldFilter,
    async_transactional,
)
from google.cloud.firestore_v1.async_collection import AsyncCollectionReference
from google.cloud.firestore_v1.async_document import AsyncDocumentReference

from ingress_egress.bounded import bounded
from ingress_egress.credentials.errors import (
    DOCUMENT_AMBIGUOUS,
    DOCUMENT_INVALID,
    DOCUMENT_MISSING,
    FIRESTORE_DENIED,
    FIRESTORE_UNAVAILABLE,
    INVALID_IDENTITY,
    REFRESH_CONTENDED,
    StoreError,
)

log = logging.getLogger("ingress_egress.credentials.token_store")

T = TypeVar("T")
RefT = TypeVar("RefT")
VersionT = TypeVar("VersionT")
ExpiresFormat = Literal["timestamp", "iso", "epoch_s", "epoch_ms"]

LEASE_FIELD = "refreshLease"
_EPOCH_MS_THRESHOLD = 1e11  # 1e11 s is the year 5138; 1e11 ms is 1973.


# -- expiresAt -----------------------------------------------------------------------------


def parse_expires_at(value: Any) -> tuple[float, ExpiresFormat]:
    """``expiresAt`` as epoch seconds, plus the format it was stored in. Raises ``ValueError``."""
    if isinstance(value, datetime):  # includes Firestore's DatetimeWithNanoseconds
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp(), "timestamp"
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, (int, float)):
        if value != value or value <= 0:  # NaN or not positive
            raise ValueError("not a positive number")
        if value > _EPOCH_MS_THRESHOLD:
            return float(value) / 1000.0, "epoch_ms"
        return float(value), "epoch_s"
    if isinstance(value, str) and value.strip():
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp(), "iso"
    if hasattr(value, "timestamp") and callable(value.timestamp):
        return float(value.timestamp()), "timestamp"
    raise ValueError(f"unsupported type {type(value).__name__}")


def format_expires_at(epoch_seconds: float, fmt: ExpiresFormat) -> Any:
    """The inverse of ``parse_expires_at`` for writing back in the document's own format."""
    moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    if fmt == "iso":
        return moment.isoformat(timespec="seconds")
    if fmt == "epoch_s":
        return int(epoch_seconds)
    if fmt == "epoch_ms":
        return int(epoch_seconds * 1000)
    return moment


# -- the record ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """One token document as read. ``repr`` never shows a token."""

    path: str
    user_id: str
    login: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    scopes: tuple[str, ...] = ()
    expires_format: ExpiresFormat = "timestamp"
    lease_owner: str | None = None
    lease_until: float | None = None

    def valid_for(self, now: float) -> float:
        """Seconds until the access token expires (negative once it has)."""
        return self.expires_at - now

    def same_tokens(self, other: TokenRecord | None) -> bool:
        return (
            other is not None
            and self.access_token == other.access_token
            and self.refresh_token == other.refresh_token
        )

    def lease_active(self, now: float, owner: str) -> bool:
        """Another instance holds an unexpired refresh lease."""
        if not self.lease_owner or self.lease_owner == owner:
            return False
        return (self.lease_until or 0.0) > now

    def with_tokens(
        self, access_token: str, refresh_token: str, expires_at: float, scopes: tuple[str, ...]
    ) -> TokenRecord:
        return replace(
            self,
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=expires_at,
            scopes=scopes or self.scopes,
            lease_owner=None,
            lease_until=None,
        )


def record_from_document(path: str, doc_id: str, data: Mapping[str, Any]) -> TokenRecord:
    """Build a ``TokenRecord``; ``StoreError(document_invalid)`` names the bad field only."""

    def invalid(name: str, problem: str) -> StoreError:
        return StoreError(DOCUMENT_INVALID, f"token document {path}: field {name} {problem}")

    access = data.get("accessToken")
    if not isinstance(access, str) or not access:
        raise invalid("accessToken", "is missing or not a non-empty string")
    refresh = data.get("refreshToken")
    if not isinstance(refresh, str) or not refresh:
        raise invalid("refreshToken", "is missing or not a non-empty string")
    if "expiresAt" not in data or data["expiresAt"] is None:
        raise invalid("expiresAt", "is missing")
    try:
        expires_at, fmt = parse_expires_at(data["expiresAt"])
    except (ValueError, TypeError, OverflowError, OSError):
        raise invalid(
            "expiresAt", "is not a timestamp, ISO-8601 string or epoch seconds/milliseconds"
        ) from None
    user_id = data.get("userId")
    user_id = "" if user_id is None or isinstance(user_id, bool) else str(user_id)
    login = data.get("login")
    login = login.lower() if isinstance(login, str) and login else doc_id.lower()
    raw_scopes = data.get("scopes")
    scopes = (
        tuple(s for s in raw_scopes if isinstance(s, str)) if isinstance(raw_scopes, list) else ()
    )
    lease_owner: str | None = None
    lease_until: float | None = None
    lease = data.get(LEASE_FIELD)
    if isinstance(lease, Mapping) and isinstance(lease.get("owner"), str):
        try:
            lease_until, _ = parse_expires_at(lease.get("expiresAt"))
            lease_owner = lease["owner"]
        except (ValueError, TypeError, OverflowError, OSError):
            lease_owner = None  # an unreadable lease is no lease
    return TokenRecord(
        path=path,
        user_id=user_id,
        login=login,
        access_token=access,
        refresh_token=refresh,
        expires_at=expires_at,
        scopes=scopes,
        expires_format=fmt,
        lease_owner=lease_owner,
        lease_until=lease_until,
    )


# -- lookup strategies ---------------------------------------------------------------------

_DOC_ID_FORBIDDEN = re.compile(r"^(\.|\.\.|__.*__)$")


class LookupStrategy(ABC):
    """Turns the identity the chat client asks for into a document reference."""

    name: str = ""

    @abstractmethod
    def normalize(self, key: str) -> str:
        """The canonical form of ``key``; raises ``StoreError(invalid_identity)``."""

    @abstractmethod
    async def locate(
        self,
        collection: AsyncCollectionReference,
        key: str,
        *,
        retry: AsyncRetry | None,
        rpc_timeout: float,
    ) -> AsyncDocumentReference | None:
        """The document for ``key`` (already normalized), or ``None`` if there is none."""

    @abstractmethod
    def matches(self, doc_id: str, data: Mapping[str, Any], key: str) -> bool:
        """Whether the document ``doc_id`` holding ``data`` is the one ``locate`` finds for
        ``key`` (the same rule, for a store that holds its documents itself)."""


class LoginLookup(LookupStrategy):
    """Document id = the lower-cased Twitch login (the default)."""

    name = "login"

    def normalize(self, key: str) -> str:
        login = key.strip().lstrip("#@").lower()
        if (
            not login
            or "/" in login
            or _DOC_ID_FORBIDDEN.match(login)
            or len(login.encode()) > 1500
        ):
            raise StoreError(INVALID_IDENTITY, "the identity is not usable as a document id")
        return login

    async def locate(
        self,
        collection: AsyncCollectionReference,
        key: str,
        *,
        retry: AsyncRetry | None,
        rpc_timeout: float,
    ) -> AsyncDocumentReference | None:
        return collection.document(key)

    def matches(self, doc_id: str, data: Mapping[str, Any], key: str) -> bool:
        return doc_id == key


class UserIdLookup(LookupStrategy):
    """A query ``where <field> == key``; matches the id stored as a string or as an integer."""

    name = "user_id"

    def __init__(self, field_name: str = "userId") -> None:
        self.field_name = field_name

    def normalize(self, key: str) -> str:
        user_id = key.strip()
        if not user_id:
            raise StoreError(INVALID_IDENTITY, "the user id is empty")
        return user_id

    async def locate(
        self,
        collection: AsyncCollectionReference,
        key: str,
        *,
        retry: AsyncRetry | None,
        rpc_timeout: float,
    ) -> AsyncDocumentReference | None:
        values: list[Any] = [key]
        if key.isdigit() and len(key) < 19:
            values.append(int(key))
        query = collection.where(filter=FieldFilter(self.field_name, "in", values)).limit(2)
        snapshots = await query.get(retry=retry, timeout=rpc_timeout)
        if len(snapshots) > 1:
            raise StoreError(
                DOCUMENT_AMBIGUOUS,
                f"more than one document in {collection.id} has {self.field_name} == {key}",
            )
        return snapshots[0].reference if snapshots else None

    def matches(self, doc_id: str, data: Mapping[str, Any], key: str) -> bool:
        value = data.get(self.field_name)
        return not isinstance(value, bool) and isinstance(value, (str, int)) and str(value) == key


def lookup_strategy(name: str) -> LookupStrategy:
    """``"login"`` or ``"user_id"`` (``FIRESTORE_LOOKUP``)."""
    if name == "login":
        return LoginLookup()
    if name == "user_id":
        return UserIdLookup()
    raise ValueError(f"unknown lookup strategy {name!r} (expected login or user_id)")


# -- the store -----------------------------------------------------------------------------


class Plan(enum.Enum):
    ADOPT = "adopt"  # the document holds a good token we have not seen: use it
    REFRESH = "refresh"  # go to Twitch (the lease, if used, is ours now)
    WAIT = "wait"  # another instance holds the refresh lease


@dataclass(frozen=True, slots=True)
class Claim:
    plan: Plan
    record: TokenRecord


def plan_claim(
    current: TokenRecord,
    seen: TokenRecord | None,
    now: float,
    *,
    owner: str,
    margin: float,
    force: bool,
    lease_seconds: float | None,
) -> Plan:
    """What a claim decides on the document as it is now (``current``):

    * its tokens differ from ``seen`` (or we are not forcing) and stay valid for more than
      ``margin`` seconds: ``ADOPT`` them;
    * with leases, another instance holds an unexpired one: ``WAIT``;
    * otherwise ``REFRESH`` with the stored (freshest) refresh token.
    """
    changed = not current.same_tokens(seen)
    valid_for = current.valid_for(now)
    if not changed and seen is not None:
        # Same token: we may know better (``/validate`` said it expires sooner).
        valid_for = min(valid_for, seen.valid_for(now))
    if valid_for > margin and (changed or not force):
        return Plan.ADOPT
    if lease_seconds is not None and current.lease_active(now, owner):
        return Plan.WAIT
    return Plan.REFRESH


def commit_replaces(current: TokenRecord, used: TokenRecord, now: float, margin: float) -> bool:
    """A commit writes our fresh tokens if the document still holds the ones we refreshed
    from (``used``), or whatever replaced them is already near expiry; otherwise the other
    writer's tokens win."""
    return current.same_tokens(used) or current.valid_for(now) <= margin


def committed(current: TokenRecord, fresh: TokenRecord) -> TokenRecord:
    """The record a winning commit leaves: ``fresh``'s tokens, no lease."""
    return current.with_tokens(
        fresh.access_token, fresh.refresh_token, fresh.expires_at, fresh.scopes or current.scopes
    )


def refreshed_fields(current: TokenRecord, fresh: TokenRecord, owner: str) -> dict[str, Any]:
    """The fields a winning commit writes (``expiresAt`` in the document's own format); the
    store adds how it clears the lease and stamps the time."""
    return {
        "accessToken": fresh.access_token,
        "refreshToken": fresh.refresh_token,
        "expiresAt": format_expires_at(fresh.expires_at, current.expires_format),
        "scopes": list(fresh.scopes or current.scopes),
        "refreshedBy": owner,
    }


class LeasedClaims(ABC, Generic[RefT, VersionT]):
    """``claim_refresh``, written once for both stores: read the document (the record and
    the version it was read at), decide (``plan_claim``) and, before a ``REFRESH`` with
    leases, write the lease as a compare-and-set on that version; a lost compare reads and
    decides again. A store supplies the read, the compare-and-set and its clock."""

    _clock: Callable[[], float]
    _claim_attempts: int

    @abstractmethod
    async def _claim_snapshot(self, ref: RefT) -> tuple[TokenRecord, VersionT]: ...

    @abstractmethod
    async def _claim_set_lease(self, ref: RefT, version: VersionT, lease: dict[str, Any]) -> bool:
        """Write ``lease`` as the document's refresh lease if it is still at ``version``."""

    async def claim_refresh(
        self,
        ref: RefT,
        seen: TokenRecord | None,
        *,
        owner: str,
        margin: float,
        force: bool,
        lease_seconds: float | None,
    ) -> Claim:
        where = "the token document"
        for _ in range(self._claim_attempts):
            current, version = await self._claim_snapshot(ref)
            where, now = current.path, self._clock()
            plan = plan_claim(
                current,
                seen,
                now,
                owner=owner,
                margin=margin,
                force=force,
                lease_seconds=lease_seconds,
            )
            if plan is not Plan.REFRESH or lease_seconds is None:
                return Claim(plan, current)
            until = now + lease_seconds
            lease = {"owner": owner, "expiresAt": datetime.fromtimestamp(until, UTC)}
            if await self._claim_set_lease(ref, version, lease):
                return Claim(Plan.REFRESH, replace(current, lease_owner=owner, lease_until=until))
            log.debug("lost the race for the refresh lease on %s; re-reading", where)
        raise StoreError(REFRESH_CONTENDED, f"the refresh lease on {where} kept changing")


class TokenStore(Protocol[RefT]):
    """Where the bot's token documents live; ``RefT`` is the store's document reference.

    Every failure is a ``StoreError`` (``firestore_unavailable``, ``document_missing``, ...);
    no method ever puts a token into an error, a log line or a ``repr``.
    """

    @property
    def lookup(self) -> LookupStrategy:
        """How an identity finds its document (login = document id, or a user-id query)."""
        ...

    def normalize(self, key: str) -> str:
        """The canonical form of an identity; ``StoreError(invalid_identity)`` if unusable."""
        ...

    async def locate(self, key: str) -> RefT:
        """The document for ``key``; ``StoreError(document_missing)`` if there is none."""
        ...

    async def read(self, ref: RefT) -> TokenRecord: ...

    async def claim_refresh(
        self,
        ref: RefT,
        seen: TokenRecord | None,
        *,
        owner: str,
        margin: float,
        force: bool,
        lease_seconds: float | None,
    ) -> Claim:
        """Re-read and decide (``plan_claim``); a ``REFRESH`` with ``lease_seconds`` holds
        the lease for ``owner`` when it returns."""
        ...

    async def commit_refresh(
        self, ref: RefT, used: TokenRecord, fresh: TokenRecord, *, owner: str, margin: float
    ) -> tuple[TokenRecord, bool]:
        """Write ``fresh`` atomically if ``commit_replaces``; ``(record, adopted)``."""
        ...

    async def release_claim(self, ref: RefT, owner: str) -> None:
        """Drop ``owner``'s refresh lease, if it still holds one."""
        ...


class FirestoreTokenStore(LeasedClaims[AsyncDocumentReference, Any]):
    """Reads and transactionally updates token documents in one collection."""

    def __init__(
        self,
        client: AsyncClient,
        collection: str,
        lookup: LookupStrategy,
        *,
        timeout: float = 10.0,
        retry_window: float = 3.0,
        transaction_attempts: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._collection_name = collection
        self._lookup = lookup
        self._timeout = timeout
        self._clock = clock
        self._tx_attempts = transaction_attempts
        self._claim_attempts = transaction_attempts
        self._retry: AsyncRetry | None = (
            AsyncRetry(
                predicate=if_transient_error,
                initial=0.05,
                maximum=0.5,
                multiplier=2.0,
                timeout=retry_window,
            )
            if retry_window > 0
            else None
        )

    def __repr__(self) -> str:
        return (
            f"FirestoreTokenStore(collection={self._collection_name!r}, "
            f"lookup={self._lookup.name!r})"
        )

    @property
    def lookup(self) -> LookupStrategy:
        return self._lookup

    def normalize(self, key: str) -> str:
        return self._lookup.normalize(key)

    async def locate(self, key: str) -> AsyncDocumentReference:
        """The document for ``key``; ``StoreError(document_missing)`` if the lookup finds none."""
        key = self._lookup.normalize(key)
        collection = self._client.collection(self._collection_name)
        ref = await self._guard(
            "lookup",
            self._lookup.locate(collection, key, retry=self._retry, rpc_timeout=self._timeout),
        )
        if ref is None:
            raise StoreError(
                DOCUMENT_MISSING,
                f"no token document in {self._collection_name} for {self._lookup.name} {key}",
            )
        return ref

    async def read(self, ref: AsyncDocumentReference) -> TokenRecord:
        snapshot = await self._guard("read", ref.get(retry=self._retry, timeout=self._timeout))
        return self._record(ref, snapshot)

    async def _claim_snapshot(self, ref: AsyncDocumentReference) -> tuple[TokenRecord, Any]:
        snapshot = await self._guard("claim", ref.get(retry=self._retry, timeout=self._timeout))
        return self._record(ref, snapshot), snapshot

    async def _claim_set_lease(
        self, ref: AsyncDocumentReference, version: Any, lease: dict[str, Any]
    ) -> bool:
        # lock-free: a transaction here would make two racing instances wait on each
        # other's locks; the compare is on the document's update time
        update = self._update_if_unchanged(ref, version, {LEASE_FIELD: lease})
        return await self._guard("claim", update)

    async def commit_refresh(
        self,
        ref: AsyncDocumentReference,
        used: TokenRecord,
        fresh: TokenRecord,
        *,
        owner: str,
        margin: float,
    ) -> tuple[TokenRecord, bool]:
        """Write ``fresh`` unless the document changed meanwhile; returns ``(record, adopted)``.

        Inside one transaction the document is re-read; if ``commit_replaces`` says so,
        ``fresh`` is written (in the document's own ``expiresAt`` format) and the lease
        cleared. Otherwise the other writer's token wins: nothing of ours is written and the
        stored record is returned.
        """

        async def body(tx: AsyncTransaction) -> tuple[TokenRecord, bool]:
            now = self._clock()
            current = await self._read_in(tx, ref)
            if commit_replaces(current, used, now, margin):
                fields = refreshed_fields(current, fresh, owner)
                fields.update({LEASE_FIELD: DELETE_FIELD, "refreshedAt": SERVER_TIMESTAMP})
                tx.update(ref, fields)
                return committed(current, fresh), False
            if current.lease_owner == owner:
                tx.update(ref, {LEASE_FIELD: DELETE_FIELD})
            return replace(current, lease_owner=None, lease_until=None), True

        return await self._transaction("commit", body)

    async def release_claim(self, ref: AsyncDocumentReference, owner: str) -> None:
        """Drop our refresh lease (after a failed refresh) so others need not wait it out."""
        for _ in range(self._tx_attempts):
            snapshot = await self._guard(
                "release", ref.get(retry=self._retry, timeout=self._timeout)
            )
            lease = (snapshot.to_dict() or {}).get(LEASE_FIELD) if snapshot.exists else None
            if not isinstance(lease, Mapping) or lease.get("owner") != owner:
                return
            drop = {LEASE_FIELD: DELETE_FIELD}
            if await self._guard("release", self._update_if_unchanged(ref, snapshot, drop)):
                return

    # -- plumbing ----------------------------------------------------------------------

    async def _update_if_unchanged(
        self, ref: AsyncDocumentReference, snapshot: Any, fields: dict[str, Any]
    ) -> bool:
        """Apply ``fields`` only if the document is still the version in ``snapshot``."""
        option = self._client.write_option(last_update_time=snapshot.update_time)
        try:
            await ref.update(fields, option=option, retry=self._retry, timeout=self._timeout)
        except (gexc.FailedPrecondition, gexc.Aborted):
            return False
        except gexc.NotFound:
            raise StoreError(DOCUMENT_MISSING, f"token document {ref.path} was deleted") from None
        return True

    def _record(self, ref: AsyncDocumentReference, snapshot: Any) -> TokenRecord:
        if not snapshot.exists:
            raise StoreError(DOCUMENT_MISSING, f"token document {ref.path} does not exist")
        return record_from_document(ref.path, ref.id, snapshot.to_dict() or {})

    async def _read_in(self, tx: AsyncTransaction, ref: AsyncDocumentReference) -> TokenRecord:
        snapshot = await ref.get(transaction=tx, retry=self._retry, timeout=self._timeout)
        return self._record(ref, snapshot)

    async def _transaction(self, op: str, body: Callable[[AsyncTransaction], Awaitable[T]]) -> T:
        @async_transactional
        async def run(tx: AsyncTransaction) -> T:
            return await body(tx)

        return await self._guard(op, run(self._client.transaction(max_attempts=self._tx_attempts)))

    async def _guard(self, op: str, call: Awaitable[T]) -> T:
        """Await one bounded Firestore operation and map its failures onto ``StoreError``."""
        try:
            return await bounded(call, self._timeout)
        except StoreError:
            raise
        except (gexc.PermissionDenied, gexc.Unauthenticated) as exc:
            raise StoreError(
                FIRESTORE_DENIED, f"firestore {op} was denied ({type(exc).__name__})"
            ) from None
        except TimeoutError:
            raise StoreError(
                FIRESTORE_UNAVAILABLE, f"firestore {op} timed out after {self._timeout:g}s"
            ) from None
        except (
            gexc.GoogleAPIError,
            auth_exc.GoogleAuthError,
            grpc.RpcError,
            OSError,
            ValueError,
        ) as exc:
            # ValueError: the client gives up on a transaction after max_attempts contentions.
            raise StoreError(
                FIRESTORE_UNAVAILABLE, f"firestore {op} failed ({type(exc).__name__})"
            ) from None
