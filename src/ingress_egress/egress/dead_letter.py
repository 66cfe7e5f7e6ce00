"""A command that cannot be read at all (``UnreadableCommand``) cannot be answered: it goes
to ``${BUS_PREFIX}internal.egress.dlq.v1`` in a record saying why, kept whole (base64, up
to ``MAX_COMMAND_BYTES``) so nothing is lost. The record's id is derived from the bytes, so
a redelivered copy of the same message is stored once (``Nats-Msg-Id`` = ``dlq:<id>``)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import orjson

from ingress_egress.egress.command import MAX_COMMAND_BYTES
from ingress_egress.egress.result import iso_time
from ingress_egress.envelope.ids import stable_uuid

DLQ_RECORD_TYPE = "internal.egress.dlq.v1"
COMMAND_SUBJECT = "internal.egress.v1"
DLQ_SUBJECT = "internal.egress.dlq.v1"
PREVIEW_CHARS = 512


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    data: bytes

    @property
    def msg_id(self) -> str:
        return f"dlq:{self.id}"

    @staticmethod
    def subject(bus_prefix: str) -> str:
        return bus_prefix + DLQ_SUBJECT


def dead_letter(raw: bytes | bytearray | memoryview, reason: str, now: float) -> DeadLetter:
    """The DLQ record for ``raw``, the unreadable message, and ``reason``, why."""
    data = bytes(raw)
    record_id = stable_uuid("egress-dlq:" + hashlib.sha256(data).hexdigest())
    record = {
        "type": DLQ_RECORD_TYPE,
        "id": record_id,
        "reason": reason,
        "permanent": True,
        "deadLetteredAt": iso_time(now),
        "destination": COMMAND_SUBJECT,
        "commandBytes": len(data),
        "commandPreview": data[: PREVIEW_CHARS * 4].decode("utf-8", "replace")[:PREVIEW_CHARS],
        # Kept whole up to the size a command may have; a larger one only as its preview,
        # so the record always fits the bus.
        "commandBase64": (
            base64.b64encode(data).decode("ascii") if len(data) <= MAX_COMMAND_BYTES else None
        ),
    }
    return DeadLetter(record_id, orjson.dumps(record))
