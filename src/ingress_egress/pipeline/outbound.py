"""Envelope -> ``OutboundMessage``: JSON encoded once, bus metadata alongside."""

from __future__ import annotations

from typing import Any

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
