"""The ledger in a NATS JetStream key-value bucket, ``<name>-egress-ledger``, on the
nats-server the bus uses. One key per command (``ledger_key``), the record as JSON.

``begin`` is the bucket's ``create``: the server refuses it when the key exists, so two
holders (or a redelivery racing the first delivery) cannot both start the same command.
Later writes are ``update``s on the revision this process wrote last, so a record another
holder touched meanwhile is never overwritten (``LedgerConflict``). The bucket's TTL
(default a day) removes old records by itself. ``recent_sends`` reads only the records
written lately, through a short-lived consumer starting at that time (not a listing of
every key, which grows with the TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig, StorageType

from ingress_egress.bus.nats_kv import describe_error, kv_call
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

REQUEST_TIMEOUT_S = 3.0
FETCH_BATCH = 256


def bucket_name(cluster: str) -> str:
    return f"{cluster}-egress-ledger"


class NatsLedger:
    name = "nats"

    def __init__(self, url: str, bucket: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.url = url
        self.bucket = bucket
        self.ttl_s = ttl_s
        self._nc: Any = None
        self._js: Any = None
        self._kv: Any = None
        self._mine: dict[str, tuple[LedgerRecord, int]] = {}  # started here, not finished

    async def start(self) -> None:
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    self.url,
                    name="ingress-egress-ledger",
                    connect_timeout=REQUEST_TIMEOUT_S,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    error_cb=_quiet,
                ),
                2 * REQUEST_TIMEOUT_S,
            )
            self._js = self._nc.jetstream(timeout=REQUEST_TIMEOUT_S)
            self._kv = await self._bucket()
        except Exception as error:
            await self.close()
            raise LedgerUnavailable(f"ledger {self.url}: {describe_error(error)}") from None

    async def _bucket(self) -> Any:
        try:
            return await self._js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            config = KeyValueConfig(
                bucket=self.bucket, history=1, ttl=self.ttl_s, storage=StorageType.FILE
            )
            return await self._js.create_key_value(config)

    async def close(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), REQUEST_TIMEOUT_S)
        self._nc = self._js = self._kv = None

    @property
    def _store(self) -> Any:
        if self._kv is None:
            raise LedgerUnavailable("ledger not connected")
        return self._kv

    async def lookup(self, command_id: str) -> LedgerRecord | None:
        try:
            entry = await self._call(self._store.get(ledger_key(command_id)))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return _decode(entry.value, command_id)

    async def begin(self, record: LedgerRecord) -> LedgerRecord | None:
        try:
            revision = await self._call(
                self._store.create(ledger_key(record.command_id), _encode(record))
            )
        except _Exists:
            existing = await self.lookup(record.command_id)
            return existing if existing is not None else damaged_record(record.command_id)
        self._mine[record.command_id] = (record, revision)
        return None

    async def part_sent(self, command_id: str, part: SentPart) -> None:
        record, _ = self._owned(command_id)
        await self._write(record.with_part(part))

    async def finish(self, command_id: str, outcome: Outcome, at: float) -> None:
        record, _ = self._owned(command_id)
        await self._write(record.with_outcome(outcome, at))
        self._mine.pop(command_id, None)

    def _owned(self, command_id: str) -> tuple[LedgerRecord, int]:
        mine = self._mine.get(command_id)
        if mine is None:
            raise LedgerConflict(f"{command_id} was not started here")
        return mine

    async def _write(self, record: LedgerRecord) -> None:
        _, revision = self._mine[record.command_id]
        key = ledger_key(record.command_id)
        try:
            new = await self._call(self._store.update(key, _encode(record), last=revision))
        except _Exists:
            self._mine.pop(record.command_id, None)
            raise LedgerConflict(f"{record.command_id}: written by another holder") from None
        self._mine[record.command_id] = (record, new)

    async def recent_sends(self, since: float) -> list[RecentSend]:
        start = datetime.fromtimestamp(since - UNFINISHED_LOOKBACK_S, UTC)
        try:
            latest = await asyncio.wait_for(self._read_from(start), 10 * REQUEST_TIMEOUT_S)
        except LedgerUnavailable:
            raise
        except Exception as error:
            raise LedgerUnavailable(f"ledger read: {describe_error(error)}") from None
        return sends_since(list(latest.values()), since)

    async def _read_from(self, start: datetime) -> dict[str, LedgerRecord]:
        """The latest version of every record written since ``start``, key by key."""
        if self._js is None:
            raise LedgerUnavailable("ledger not connected")
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        prefix = f"$KV.{self.bucket}."
        sub = await self._js.pull_subscribe(f"{prefix}>", stream=f"KV_{self.bucket}", config=config)
        latest: dict[str, LedgerRecord] = {}
        try:
            pending = (await sub.consumer_info()).num_pending
            while pending > 0:
                for msg in await sub.fetch(min(pending, FETCH_BATCH), timeout=REQUEST_TIMEOUT_S):
                    pending = msg.metadata.num_pending
                    key = msg.subject[len(prefix) :]
                    if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
                        latest.pop(key, None)
                        continue
                    latest[key] = _decode(msg.data, key)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        return latest

    async def _call(self, awaitable: Any) -> Any:
        return await kv_call(
            awaitable,
            timeout_s=REQUEST_TIMEOUT_S,
            exists=_Exists,
            unavailable=LedgerUnavailable,
            missing=None,
        )


class _Exists(LedgerUnavailable):
    """The key was written by someone else first."""


def _encode(record: LedgerRecord) -> bytes:
    return json.dumps(record.to_json(), separators=(",", ":")).encode()


def _decode(data: bytes | None, command_id: str) -> LedgerRecord:
    try:
        return LedgerRecord.from_json(json.loads(data or b""))
    except (ValueError, KeyError, TypeError):
        return damaged_record(command_id)


async def _quiet(error: Exception) -> None:
    return None
