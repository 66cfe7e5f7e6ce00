"""The one finalizer record each command gets (docs/egress.md, "Results").

It has the finalizer-status shape of docs/delivery.md (``type``
``internal.finalizer.status.v1``, ``stage`` ``ingress-egress``, ``envelopeId``, ...) and goes
to ``${BUS_PREFIX}`` + the command's ``finalizationDestination``. Its ``id`` is also its
``Nats-Msg-Id``, so publishing it again (a redelivery, a takeover) stores it once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import orjson

from ingress_egress.egress.command import COMMAND_TYPE, EgressCommand, InvalidCommand

STATUS_TYPE = "internal.finalizer.status.v1"
STAGE = "ingress-egress"
Status = Literal["sent", "dropped", "expired", "failed", "unknown"]
STATUSES: tuple[Status, ...] = ("sent", "dropped", "expired", "failed", "unknown")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a command: what the ledger stores and the result reports."""

    status: Status
    twitch_message_ids: tuple[str, ...] = ()
    reason: str | None = None
    detail: str | None = None  # for people: what exactly was wrong, what Twitch said
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class EgressResult:
    command_id: str
    correlation_id: str | None
    trace_id: str | None
    channel: str | None
    finalization_destination: str
    outcome: Outcome
    timestamp: float  # epoch seconds: when the outcome was decided

    @property
    def id(self) -> str:
        """``<command id>:ingress-egress:egress``; also its ``Nats-Msg-Id``."""
        return result_id(self.command_id)

    def subject(self, bus_prefix: str) -> str:
        return bus_prefix + self.finalization_destination

    def to_json(self) -> dict[str, object]:
        outcome = self.outcome
        return {
            "type": STATUS_TYPE,
            "id": self.id,
            "stage": STAGE,
            "envelopeId": self.command_id,
            "eventType": COMMAND_TYPE,
            "correlationId": self.correlation_id,
            "traceId": self.trace_id,
            "channel": self.channel,
            "status": outcome.status,
            "twitchMessageIds": list(outcome.twitch_message_ids),
            "reason": outcome.reason,
            "detail": outcome.detail,
            "attempts": outcome.attempts,
            "timestamp": iso_time(self.timestamp),
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())


def result_id(command_id: str) -> str:
    return f"{command_id}:{STAGE}:egress"


def result_for(command: EgressCommand, outcome: Outcome, now: float) -> EgressResult:
    return EgressResult(
        command_id=command.id,
        correlation_id=command.correlation_id,
        trace_id=command.trace_id,
        channel=command.channel,
        finalization_destination=command.finalization_destination,
        outcome=outcome,
        timestamp=now,
    )


def result_for_invalid(error: InvalidCommand, now: float) -> EgressResult:
    """``dropped`` with ``invalid`` (or ``too_long``): a command that breaks the contract."""
    return EgressResult(
        command_id=error.command_id,
        correlation_id=error.correlation_id,
        trace_id=error.trace_id,
        channel=error.channel,
        finalization_destination=error.finalization_destination,
        outcome=Outcome("dropped", reason=error.reason, detail=error.detail),
        timestamp=now,
    )


def iso_time(epoch: float) -> str:
    """``2026-12-08T01:02:03.456Z`` (UTC, milliseconds), as every record here writes time."""
    millis = int(epoch * 1000)
    second, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{ms:03d}Z"
