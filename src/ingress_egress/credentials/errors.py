"""Stable, secret-free reason codes for credentials failures, and a log scrubber.

Every code here can appear as ``status()["reason"]`` and as ``CredentialsError.code``.
Messages built around them name the operation and the failure *type*, never a token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ingress_egress.credentials.base import CredentialsError

# Firestore document problems.
DOCUMENT_MISSING = "document_missing"
DOCUMENT_INVALID = "document_invalid"
DOCUMENT_AMBIGUOUS = "document_ambiguous"
INVALID_IDENTITY = "invalid_identity"
# Firestore itself.
FIRESTORE_UNAVAILABLE = "firestore_unavailable"
FIRESTORE_DENIED = "firestore_denied"
# Twitch OAuth.
REFRESH_TOKEN_INVALID = "refresh_token_invalid"
ACCESS_TOKEN_INVALID = "access_token_invalid"
OAUTH_UNAVAILABLE = "oauth_unavailable"
OAUTH_REJECTED = "oauth_rejected"
OAUTH_BAD_RESPONSE = "oauth_bad_response"
# Provider-level.
TOKEN_EXPIRED = "token_expired"
REFRESH_CONTENDED = "refresh_contended"
FORCE_REFRESH_RATE_LIMITED = "force_refresh_rate_limited"
INTERNAL_ERROR = "internal_error"
NOT_STARTED = "not_started"
CLOSED = "closed"

ALL_CODES = frozenset(
    {
        DOCUMENT_MISSING,
        DOCUMENT_INVALID,
        DOCUMENT_AMBIGUOUS,
        INVALID_IDENTITY,
        FIRESTORE_UNAVAILABLE,
        FIRESTORE_DENIED,
        REFRESH_TOKEN_INVALID,
        ACCESS_TOKEN_INVALID,
        OAUTH_UNAVAILABLE,
        OAUTH_REJECTED,
        OAUTH_BAD_RESPONSE,
        TOKEN_EXPIRED,
        REFRESH_CONTENDED,
        FORCE_REFRESH_RATE_LIMITED,
        INTERNAL_ERROR,
        NOT_STARTED,
        CLOSED,
    }
)

REDACTED = "<redacted>"


class StoreError(CredentialsError):
    """The token document could not be read or written (see ``code``)."""


class OAuthError(CredentialsError):
    """Twitch's OAuth endpoint refused or could not be reached (see ``code``)."""

    def __init__(self, code: str, message: str, *, http_status: int | None = None) -> None:
        super().__init__(code, message)
        self.http_status = http_status


def fingerprint(secret: str) -> str:
    """A short, one-way tag for telling tokens apart in logs and status (not reversible)."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:10]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret (and its ``oauth:`` form) replaced by ``<redacted>``."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
