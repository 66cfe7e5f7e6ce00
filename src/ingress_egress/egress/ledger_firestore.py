"""The ledger in Firestore, with the Pub/Sub bus: one document per command under
``ingress_egress_egress/<name>/commands/<ledger key>``.

``begin`` is ``create()``: Firestore refuses it when the document exists (``AlreadyExists``),
atomically, so two holders cannot both start a command. Later writes carry the document's
update time as a precondition, so a record another holder touched is never overwritten
(``LedgerConflict``). ``updatedAt`` (a timestamp) lets ``recent_sends`` query only what was
written lately; ``expiresAt`` is there for a Firestore TTL policy to collect old records (it
is not needed for correctness: an old record still answers a very late redelivery).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.base_query import FieldFilter

from ingress_egress.bounded import bounded
from ingress_egress.egress.ledger import (
    DEFAULT_TTL_S,
    UNFINISHED_LOOKBACK_S,
    LedgerConflict,
    LedgerRecord,
    LedgerUnavailable,
    SentPart,
    damaged_record,
    ledger_key,
    sends_since,
)
from ingress_egress.egress.limits import RecentSend
from ingress_egress.egress.result import Outcome

ROOT_COLLECTION = "ingress_egress_egress"
TIMEOUT_S = 5.0


class _Conflict(LedgerUnavailable):
    """A precondition failed: the document exists, or changed since we wrote it."""


class FirestoreLedger:
    name = "firestore"

    def __init__(self, client: Any, name: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        """``client``: a ``google.cloud.firestore.AsyncClient``; ``name``: the cluster's
        (or service's) name, so that two deployments keep separate ledgers."""
        self._client = client
        self._commands = client.collection(ROOT_COLLECTION).document(name).collection("commands")
        self.ttl_s = ttl_s
        self._mine: dict[str, tuple[LedgerRecord, Any]] = {}  # record, its update time

    async def start(self) -> None:
        await self._guard(self._commands.limit(1).get())

    async def close(self) -> None:
        return None

    def _fields(self, record: LedgerRecord) -> dict[str, Any]:
        updated = datetime.fromtimestamp(record.updated_at, UTC)
        return {
            "record": record.to_json(),
            "updatedAt": updated,
            "expiresAt": updated + timedelta(seconds=self.ttl_s),
        }

    async def lookup(self, command_id: str) -> LedgerRecord | None:
        snapshot = await self._guard(self._commands.document(ledger_key(command_id)).get())
        if not snapshot.exists:
            return None
        return _decode(snapshot.to_dict(), command_id)

    async def begin(self, record: LedgerRecord) -> LedgerRecord | None:
        document = self._commands.document(ledger_key(record.command_id))
        try:
            result = await self._guard(document.create(self._fields(record)))
        except _Conflict:
            existing = await self.lookup(record.command_id)
            return existing if existing is not None else damaged_record(record.command_id)
        self._mine[record.command_id] = (record, result.update_time)
        return None

    async def part_sent(self, command_id: str, part: SentPart) -> None:
        await self._write(self._owned(command_id).with_part(part))

    async def finish(self, command_id: str, outcome: Outcome, at: float) -> None:
        await self._write(self._owned(command_id).with_outcome(outcome, at))
        self._mine.pop(command_id, None)

    def _owned(self, command_id: str) -> LedgerRecord:
        mine = self._mine.get(command_id)
        if mine is None:
            raise LedgerConflict(f"{command_id} was not started here")
        return mine[0]

    async def _write(self, record: LedgerRecord) -> None:
        _, update_time = self._mine[record.command_id]
        document = self._commands.document(ledger_key(record.command_id))
        option = self._client.write_option(last_update_time=update_time)
        try:
            result = await self._guard(document.update(self._fields(record), option=option))
        except _Conflict:
            self._mine.pop(record.command_id, None)
            raise LedgerConflict(f"{record.command_id}: written by another holder") from None
        self._mine[record.command_id] = (record, result.update_time)

    async def recent_sends(self, since: float) -> list[RecentSend]:
        start = datetime.fromtimestamp(since - UNFINISHED_LOOKBACK_S, UTC)
        query = self._commands.where(filter=FieldFilter("updatedAt", ">=", start))
        snapshots = await self._guard(query.get())
        records = [_decode(snapshot.to_dict(), snapshot.id) for snapshot in snapshots]
        return sends_since(records, since)

    async def _guard(self, call: Any) -> Any:
        try:
            return await bounded(call, TIMEOUT_S)
        except (gexc.FailedPrecondition, gexc.AlreadyExists, gexc.Aborted):
            raise _Conflict from None
        except TimeoutError:
            raise LedgerUnavailable(f"firestore timed out after {TIMEOUT_S:g}s") from None
        except Exception as error:  # google-auth, grpc: say what, never the payload
            raise LedgerUnavailable(f"firestore: {type(error).__name__}") from None


def _decode(fields: dict[str, Any] | None, command_id: str) -> LedgerRecord:
    try:
        return LedgerRecord.from_json((fields or {})["record"])
    except (ValueError, KeyError, TypeError):
        return damaged_record(command_id)
