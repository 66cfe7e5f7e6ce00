"""Each command sent at most once, across crashes, redeliveries and takeovers.

Before the first message of a command goes to Twitch, ``begin`` records the command as
started, atomically (a create that fails when the record exists), in a store a replacement
instance reads (NATS KV with the NATS bus, Firestore with Pub/Sub; ``MemoryLedger`` for one
process). Each part Twitch answered is added (``part_sent``), then the outcome (``finish``).
A command whose record exists is never sent again:

* the record has an outcome: that outcome is reported again (``prior_outcome``);
* it was started and has none (the holder died between ``begin`` and ``finish``, maybe in
  the middle of a multi-part text): ``unknown``, with the Twitch ids of the parts known
  to have gone.

docs/egress.md walks through every crash point. The records also say what the identity
sent lately (``recent_sends``), which a new holder's limiter takes over (``restore``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ingress_egress.egress.limits import RecentSend
from ingress_egress.egress.result import STATUSES, Outcome

DEFAULT_TTL_S = 24 * 3600.0  # outlives any redelivery: a record gone too soon could not stop one
INTERRUPTED_REASON = "interrupted"
# An unfinished record last written this long before ``since`` may still have had a part on
# its way (a holder waits that long at most for Twitch's answer before recording something).
UNFINISHED_LOOKBACK_S = 60.0


class LedgerUnavailable(Exception):
    """The store could not be reached or refused: nothing may be sent for this command now."""


class LedgerConflict(LedgerUnavailable):
    """Somebody else wrote this command's record since we did (another holder): stop."""


@dataclass(frozen=True, slots=True)
class SentPart:
    """A part Twitch answered: its position, when, and the id Twitch gave it (if any)."""

    index: int
    at: float
    twitch_message_id: str | None


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    command_id: str
    channel: str
    holder: str
    fence: int
    started_at: float
    parts: tuple[SentPart, ...] = ()
    outcome: Outcome | None = None
    finished_at: float | None = None

    @property
    def updated_at(self) -> float:
        latest = max((part.at for part in self.parts), default=self.started_at)
        return max(latest, self.finished_at or latest)

    def with_part(self, part: SentPart) -> LedgerRecord:
        return replace(self, parts=(*self.parts, part))

    def with_outcome(self, outcome: Outcome, at: float) -> LedgerRecord:
        return replace(self, outcome=outcome, finished_at=at)

    def sends(self) -> list[RecentSend]:
        """What this command put on the wire, as a limiter counts it; an unfinished record
        may have had one more part on its way."""
        sends = [RecentSend(self.channel, part.at) for part in self.parts]
        if self.outcome is None:
            sends.append(RecentSend(self.channel, self.updated_at, settled=False))
        return sends

    def to_json(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "commandId": self.command_id,
            "channel": self.channel,
            "holder": self.holder,
            "fence": self.fence,
            "startedAt": self.started_at,
            # maps, not nested arrays: Firestore stores no array inside an array
            "parts": [
                {"index": p.index, "at": p.at, "twitchMessageId": p.twitch_message_id}
                for p in self.parts
            ],
            "outcome": None if outcome is None else _outcome_json(outcome),
            "finishedAt": self.finished_at,
        }

    @staticmethod
    def from_json(body: dict[str, Any]) -> LedgerRecord:
        """Raises ``KeyError``/``TypeError``/``ValueError`` on a damaged record."""
        outcome = body.get("outcome")
        return LedgerRecord(
            command_id=str(body["commandId"]),
            channel=str(body["channel"]),
            holder=str(body["holder"]),
            fence=int(body["fence"]),
            started_at=float(body["startedAt"]),
            parts=tuple(_part_from_json(part) for part in body.get("parts") or []),
            outcome=None if outcome is None else _outcome_from_json(outcome),
            finished_at=None if body.get("finishedAt") is None else float(body["finishedAt"]),
        )


def _part_from_json(body: dict[str, Any]) -> SentPart:
    message_id = body.get("twitchMessageId")
    return SentPart(
        int(body["index"]), float(body["at"]), None if message_id is None else str(message_id)
    )


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "twitchMessageIds": list(outcome.twitch_message_ids),
        "reason": outcome.reason,
        "detail": outcome.detail,
        "attempts": outcome.attempts,
    }


def _outcome_from_json(body: dict[str, Any]) -> Outcome:
    status = body["status"]
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    return Outcome(
        status=status,
        twitch_message_ids=tuple(str(i) for i in body.get("twitchMessageIds") or []),
        reason=body.get("reason"),
        detail=body.get("detail"),
        attempts=int(body.get("attempts", 0)),
    )


def prior_outcome(record: LedgerRecord) -> Outcome:
    """What to report for a command found in the ledger (it is never sent again)."""
    if record.outcome is not None:
        return record.outcome
    ids = tuple(p.twitch_message_id for p in record.parts if p.twitch_message_id)
    return Outcome(
        "unknown",
        twitch_message_ids=ids,
        reason=INTERRUPTED_REASON,
        detail=(
            f"started by {record.holder} with {len(record.parts)} part(s) answered, then "
            "no outcome recorded: it may have reached chat, so it is not sent again"
        ),
        attempts=len(record.parts),
    )


def damaged_record(command_id: str) -> LedgerRecord:
    """Stands for a record that exists but cannot be read: treated as started, unknown."""
    return LedgerRecord(
        command_id, channel="", holder="(unreadable record)", fence=0, started_at=0.0
    )


def sends_since(records: list[LedgerRecord], since: float) -> list[RecentSend]:
    """The sends of ``records`` a limiter restoring at ``since`` must count: answered parts
    from ``since`` on, and the possible last part of every unfinished recent record."""
    sends: list[RecentSend] = []
    for record in records:
        if record.updated_at < since - UNFINISHED_LOOKBACK_S:
            continue
        sends.extend(send for send in record.sends() if not send.settled or send.at >= since)
    return sends


def ledger_key(command_id: str) -> str:
    """A key every engine accepts (NATS KV: ``[-_=a-zA-Z0-9]``, no ``:``; Firestore: no
    ``/``): the id itself when it is plain (UUIDs are), else ``x`` + its hex."""
    if re.fullmatch(r"[A-Za-z0-9_\-]{1,128}", command_id):
        return command_id
    return "x" + command_id.encode().hex()


class Ledger(Protocol):
    name: str  # "memory" | "nats" | "firestore"

    async def start(self) -> None:
        """Connect; raises ``LedgerUnavailable``."""

    async def close(self) -> None: ...

    async def lookup(self, command_id: str) -> LedgerRecord | None:
        """The command's record, if any (a damaged one counts as started, never as absent)."""

    async def begin(self, record: LedgerRecord) -> LedgerRecord | None:
        """Record ``record`` (no parts, no outcome) if the command has no record yet: then
        None, and the caller may send. Otherwise the existing record, and it may not."""

    async def part_sent(self, command_id: str, part: SentPart) -> None:
        """Add a part Twitch answered (``LedgerConflict`` if another holder wrote since)."""

    async def finish(self, command_id: str, outcome: Outcome, at: float) -> None:
        """Record the outcome (``LedgerConflict`` if another holder wrote since)."""

    async def recent_sends(self, since: float) -> list[RecentSend]:
        """``sends_since(records, since)`` over the records written lately: what a new
        holder's limiter ``restore``s before it consumes commands (epoch seconds)."""


class MemoryLedger:
    """The ledger of one process (the memory bus, tests): nothing survives a restart."""

    name = "memory"

    def __init__(self) -> None:
        self._records: dict[str, LedgerRecord] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def lookup(self, command_id: str) -> LedgerRecord | None:
        return self._records.get(command_id)

    async def begin(self, record: LedgerRecord) -> LedgerRecord | None:
        existing = self._records.get(record.command_id)
        if existing is not None:
            return existing
        self._records[record.command_id] = record
        return None

    async def part_sent(self, command_id: str, part: SentPart) -> None:
        self._records[command_id] = self._owned(command_id).with_part(part)

    async def finish(self, command_id: str, outcome: Outcome, at: float) -> None:
        self._records[command_id] = self._owned(command_id).with_outcome(outcome, at)

    def _owned(self, command_id: str) -> LedgerRecord:
        record = self._records.get(command_id)
        if record is None:
            raise LedgerConflict(f"no record of {command_id}: begin() first")
        return record

    async def recent_sends(self, since: float) -> list[RecentSend]:
        return sends_since(list(self._records.values()), since)

    def forget_older_than(self, at: float) -> int:
        """Drop records last written before ``at`` (the TTL the stores apply themselves)."""
        old = [key for key, record in self._records.items() if record.updated_at < at]
        for key in old:
            del self._records[key]
        return len(old)
