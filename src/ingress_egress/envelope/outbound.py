"""Typed message -> ``OutboundMessage``: the envelope encoded once, bus metadata alongside.

``message_to_outbound`` is the one conversion a source makes per event before handing it to
the pipeline (the IRC codec for the lines it does not convert in one batch, the EventSub
source for every event). Its reference, ``_message_to_outbound_py``, is
``EnvelopeBuilder.build`` then ``to_outbound``; with the C extension a twin writes a
PRIVMSG's JSON directly (no envelope dict, no orjson), byte for byte what the reference
produces, and hands everything else to the reference.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ingress_egress import _native
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import EnvelopeBuilder, encode_envelope, traceparent
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.twitch.messages import TwitchMessage


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


def _message_to_outbound_py(
    builder: EnvelopeBuilder,
    message: TwitchMessage,
    received_at: float | None,
    span_ids: RandomIds,
    monotonic: float,
) -> OutboundMessage | None:
    """The message's ``OutboundMessage`` (span id from ``span_ids``, ``received_at`` =
    ``monotonic``), or None for a line that is not published."""
    envelope = builder.build(message, received_at)
    if envelope is None:
        return None
    return to_outbound(envelope, span_ids.span_id(), monotonic)


MessageToOutbound = Callable[
    [EnvelopeBuilder, TwitchMessage, "float | None", RandomIds, float], "OutboundMessage | None"
]
message_to_outbound: MessageToOutbound = _message_to_outbound_py

# The C twin fills the dataclass's slots itself when they are exactly the fields it knows;
# a class with more fields (defaulted) is called instead.
_KNOWN_FIELDS = [
    "data",
    "envelope_id",
    "dedup_id",
    "type",
    "traceparent",
    "ordering_key",
    "time",
    "channel",
    "received_at",
    "seq",
]
_direct = [field.name for field in dataclasses.fields(OutboundMessage)] == _KNOWN_FIELDS
if "envelope" in _native.ACTIVE and _native.configure(
    "outbound", "configure_outbound", OutboundMessage, _direct, _message_to_outbound_py
):  # pragma: no branch
    message_to_outbound = _native.entry("message_to_outbound")


class MessageEncoder:
    """A source's typed messages, one at a time, to envelopes for ``accept`` (the pipeline's):
    what the EventSub source publishes through. It keeps its own span-id stream."""

    def __init__(self, builder: EnvelopeBuilder, accept: Callable[[OutboundMessage], None]) -> None:
        self.builder = builder
        self._accept = accept
        self._span_ids = RandomIds()

    def __call__(self, message: TwitchMessage, received_at: float) -> None:
        outbound = message_to_outbound(
            self.builder, message, received_at, self._span_ids, time.monotonic()
        )
        if outbound is not None:  # None: a message that is not published
            self._accept(outbound)
