"""Envelope -> ``OutboundMessage``: JSON encoded once, bus metadata alongside."""

from __future__ import annotations

from typing import Any

import orjson

from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import encode_envelope, traceparent


def to_outbound(envelope: dict[str, Any], span_id: str, received_at: float) -> OutboundMessage:
    payload = envelope["payload"]
    source = envelope["source"]
    return OutboundMessage(
        data=encode_envelope(envelope),
        envelope_id=envelope["id"],
        dedup_id=payload.get("messageId") or envelope["id"],
        type=envelope["type"],
        traceparent=traceparent(envelope["traceId"], span_id),
        ordering_key=source["channelId"] or source["channel"],
        time=envelope["timestamp"],
        channel=source["channel"],
        received_at=received_at,
    )


def from_spooled(data: bytes, span_id: str, received_at: float) -> OutboundMessage:
    """A spooled envelope read back: the metadata is derived by ``to_outbound`` (one place),
    the bytes stay exactly those first written (so ids and payload never change on replay)."""
    message = to_outbound(orjson.loads(data), span_id, received_at)
    message.data = data
    return message
