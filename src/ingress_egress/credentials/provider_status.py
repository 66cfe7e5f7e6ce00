"""The Firestore provider's ``status()``: reason codes, times and fingerprints, never a token."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ingress_egress.credentials.errors import CLOSED, NOT_STARTED, fingerprint
from ingress_egress.credentials.refresh_state import IdentityState


def overall(states: Sequence[IdentityState], *, started: bool, closed: bool) -> tuple[str, str]:
    """The provider's (state, reason): the first degraded identity's reason wins."""
    if closed:
        return "closed", CLOSED
    if not started:
        return "starting", NOT_STARTED
    ordered = sorted(states, key=lambda s: s.key)
    degraded = [s for s in ordered if s.state == "degraded"]
    if degraded:
        return "degraded", degraded[0].reason
    if any(s.state == "starting" for s in ordered):
        return "starting", "loading"
    return "ok", ""


def identity_status(state: IdentityState, now: float) -> dict[str, Any]:
    record = state.record
    valid = state.usable(now)
    return {
        "state": state.state,
        "reason": state.reason,
        "detail": state.detail,
        "login": record.login if record else "",
        "user_id": record.user_id if record else "",
        "document": record.path if record else "",
        "token_source": state.source,
        "token_fingerprint": fingerprint(record.access_token) if record else None,
        "token_usable": valid,
        "serving_cached": state.state == "degraded" and valid,
        "expires_at": _iso(record.expires_at) if record else None,
        "expires_in_s": round(record.valid_for(now)) if record else None,
        "scopes": list(record.scopes) if record else [],
        "last_validated_at": _iso(state.validated_at),
        "last_refreshed_at": _iso(state.refreshed_at),
        "pending_write": state.pending is not None,
        "consecutive_failures": state.failures,
        "retry_in_s": (
            round(max(0.0, state.retry_at - now), 1) if state.state == "degraded" else None
        ),
        "counters": dict(state.counters),
    }


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")
