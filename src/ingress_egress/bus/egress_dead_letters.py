"""The dead-letter record of an egress command that cannot be read at all.

Same shape as the ingress dead letters (docs/delivery.md): ``type``, ``id``, ``reason``,
``permanent``, ``attempts``, ``deadLetteredAt``, the routing fields that could be read, and
the original bytes. A command that is JSON is embedded as it is; anything else (not UTF-8,
not JSON) travels as base64 so that nothing is lost, with a readable preview beside it.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson

DLQ_RECORD_TYPE = "internal.egress.dlq.v1"
# Embedded (or base64) up to this size; a larger command is described by its size and its
# first characters, so the dead letter itself always fits the bus (NATS: 1 MB by default).
EMBED_MAX_BYTES = 256 * 1024
PREVIEW_CHARS = 2048
FIELD_MAX_CHARS = 200  # a routing field read from a broken command is kept only up to this


def iso_utc(epoch: float) -> str:
    whole = int(epoch)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((epoch - whole) * 1000):03d}Z"


def _readable_fields(data: bytes) -> tuple[dict[str, Any] | None, bool]:
    """The command's top-level object when it is one, and whether the bytes are JSON."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None, False
    return (parsed if isinstance(parsed, dict) else None), True


def _text(fields: dict[str, Any] | None, key: str) -> str | None:
    value = (fields or {}).get(key)
    return value if isinstance(value, str) and 0 < len(value) <= FIELD_MAX_CHARS else None


def _channel(fields: dict[str, Any] | None) -> str | None:
    target = (fields or {}).get("target")
    return _text(target, "channel") if isinstance(target, dict) else None


def dead_letter_record(
    data: bytes, reason: str, *, attempts: int, source: str, bus_id: str, now: float
) -> bytes:
    """The record (JSON bytes). Its ``id`` is the command's when it has a readable one, else
    ``bus_id``, the bus's id of the message."""
    fields, is_json = _readable_fields(data)
    record: dict[str, Any] = {
        "type": DLQ_RECORD_TYPE,
        "id": _text(fields, "id") or bus_id,
        "reason": reason,
        "permanent": True,
        "attempts": attempts,
        "deadLetteredAt": iso_utc(now),
        "source": source,
        "busId": bus_id,
        "eventType": _text(fields, "type"),
        "correlationId": _text(fields, "correlationId"),
        "traceId": _text(fields, "traceId"),
        "channel": _channel(fields),
        "commandBytes": len(data),
    }
    if is_json and len(data) <= EMBED_MAX_BYTES:
        head = orjson.dumps(record)
        return head[:-1] + b',"command":' + data.strip() + b"}"
    record["command"] = None
    if len(data) <= EMBED_MAX_BYTES:
        record["commandBase64"] = base64.b64encode(data).decode("ascii")
    preview = data[: PREVIEW_CHARS * 4].decode("utf-8", "replace")[:PREVIEW_CHARS]
    record["commandPreview"] = preview
    return orjson.dumps(record)
