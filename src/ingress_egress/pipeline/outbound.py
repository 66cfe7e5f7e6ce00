"""Envelopes read back from the spool, as the pipeline sends them again."""

from __future__ import annotations

import orjson

from ingress_egress.envelope import OutboundMessage
from ingress_egress.envelope.outbound import to_outbound


def from_spooled(data: bytes, span_id: str, received_at: float) -> OutboundMessage:
    """A spooled envelope read back: the metadata is derived by ``to_outbound`` (one place),
    the bytes stay exactly those first written (so ids and payload never change on replay)."""
    message = to_outbound(orjson.loads(data), span_id, received_at)
    message.data = data
    return message
