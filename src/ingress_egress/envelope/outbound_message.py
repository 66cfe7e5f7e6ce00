"""``OutboundMessage``: one envelope, encoded once, with the metadata a bus publishes it by.

What every stage hands on: a source (or its codec) makes it, the pipeline queues and spools
it, a bus driver sends it. It lives here, below all of them, so none imports another for it.
The native codec's C direct path is given this class and sets its fields in this order
(``DIRECT_FIELDS`` in sources/irc/codec/native.py checks they still match).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class OutboundMessage:
    data: bytes  # the JSON envelope, UTF-8
    envelope_id: str
    dedup_id: str  # Twitch message id when there is one, else the envelope id
    type: str  # envelope type, e.g. external.chat.message.v1
    traceparent: str  # W3C traceparent carrying the envelope traceId
    ordering_key: str  # per-channel key (room id, else channel login)
    time: str  # envelope timestamp, ISO 8601 UTC
    channel: str
    received_at: float = 0.0  # monotonic receipt time, for latency measurements
    seq: int = -1  # the spool's sequence number (-1 when there is no spool)
