"""The Firestore token store a provider creates for itself, lazily, and closes again."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from google.auth import exceptions as auth_exc
from google.cloud.firestore import AsyncClient

from ingress_egress.credentials.errors import FIRESTORE_DENIED, FIRESTORE_UNAVAILABLE, StoreError
from ingress_egress.credentials.token_store import FirestoreTokenStore, LookupStrategy, TokenStore

# The Firestore transport logs whole request/response payloads - token writes included - when
# its logger is enabled for DEBUG. Unless someone configured that logger on purpose, keep it
# at INFO so a service-wide LOG_LEVEL=DEBUG cannot leak tokens that way.
_PAYLOAD_LOGGER = "google.cloud.firestore_v1.services.firestore"


class FirestoreConnection:
    """A ``FirestoreTokenStore`` on a given client, or on one created at first use (which
    ``close()`` then closes)."""

    def __init__(
        self,
        *,
        project: str | None,
        collection: str,
        lookup: LookupStrategy,
        client: AsyncClient | None,
        timeout: float,
        retry_window: float,
        clock: Callable[[], float],
    ) -> None:
        self.collection = collection
        self._project = project
        self._lookup = lookup
        self._client = client
        self._owns_client = client is None
        self._timeout = timeout
        self._retry_window = retry_window
        self._clock = clock
        self._store: FirestoreTokenStore | None = None

    def __repr__(self) -> str:
        return f"FirestoreConnection(collection={self.collection!r})"

    def store(self) -> TokenStore[Any]:
        """The store, creating the client first if needed (``StoreError`` if impossible)."""
        if self._store is None:
            if self._client is None:
                self._client = _new_client(self._project)
            _quiet_payload_logging()
            self._store = FirestoreTokenStore(
                self._client,
                self.collection,
                self._lookup,
                timeout=self._timeout,
                retry_window=self._retry_window,
                clock=self._clock,
            )
        return self._store

    async def close(self) -> None:
        if self._client is not None and self._owns_client:
            await close_firestore_client(self._client)
            self._client = None
        self._store = None


def _new_client(project: str | None) -> AsyncClient:
    try:
        return AsyncClient(project=project)
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


def _quiet_payload_logging() -> None:
    payload_log = logging.getLogger(_PAYLOAD_LOGGER)
    if payload_log.level == logging.NOTSET:
        payload_log.setLevel(logging.INFO)


async def close_firestore_client(client: AsyncClient) -> None:
    """Close the gRPC channel of a Firestore client we created (no public API for that)."""
    api = getattr(client, "_firestore_api_internal", None)
    transport = getattr(api, "transport", None) if api is not None else None
    if transport is None:
        return
    with contextlib.suppress(Exception):
        result = transport.close()
        if inspect.isawaitable(result):
            await result
