"""A late answer is worse than none: a command older than ``max_age_s`` (from its own
``timestamp``, when the platform decided it) when its turn comes is ``expired``, not sent."""

from __future__ import annotations

from ingress_egress.egress.command import EgressCommand
from ingress_egress.egress.result import Outcome

EXPIRED_REASON = "max_age"


def is_expired(command: EgressCommand, now: float, max_age_s: float) -> bool:
    return now - command.issued_at > max_age_s


def expired_outcome(command: EgressCommand, now: float, max_age_s: float) -> Outcome:
    age_ms = int((now - command.issued_at) * 1000)
    return Outcome(
        "expired",
        reason=EXPIRED_REASON,
        detail=f"{age_ms} ms old at its turn (EGRESS_MAX_AGE_MS {int(max_age_s * 1000)})",
    )
