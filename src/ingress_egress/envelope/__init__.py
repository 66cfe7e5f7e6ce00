"""The platform Envelope: every chat event normalized into one shape (see docs/envelope.md)."""

from ingress_egress.envelope.builder import EnvelopeBuilder
from ingress_egress.envelope.encode import encode_envelope, traceparent
from ingress_egress.envelope.outbound_message import OutboundMessage
from ingress_egress.envelope.types import EVENT_TYPES, MESSAGE, MODERATION, NOTIFICATION, ROOMSTATE

__all__ = [
    "EVENT_TYPES",
    "MESSAGE",
    "MODERATION",
    "NOTIFICATION",
    "ROOMSTATE",
    "EnvelopeBuilder",
    "OutboundMessage",
    "encode_envelope",
    "traceparent",
]
