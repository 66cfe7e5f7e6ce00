"""Typed message -> ``OutboundMessage``: the envelope encoded once, bus metadata alongside.

``message_to_outbound`` is the one conversion a source makes per event before handing it to
the pipeline (the IRC source's Python codec for every line, and the native codec for the
lines it declines; the EventSub source, through ``MessageEncoder``, for every event): it is
``EnvelopeBuilder.build`` then ``to_outbound``, with one ``IdSource`` giving the envelope's
random id, its trace id and its span id, in that order of use.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage, encode_envelope, traceparent
from ingress_egress.envelope.ids import IdSource, RandomIds
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


def message_to_outbound(
    builder: EnvelopeBuilder,
    message: TwitchMessage,
    received_at: float | None,
    ids: IdSource,
    monotonic: float,
) -> OutboundMessage | None:
    """The message's ``OutboundMessage`` (its random envelope id, trace id and span id from
    ``ids``; ``received_at`` = ``monotonic``), or None for a line that is not published."""
    envelope = builder.build(message, received_at, ids=ids)
    if envelope is None:
        return None
    return to_outbound(envelope, ids.span_id(), monotonic)


class MessageEncoder:
    """A source's typed messages, one at a time, to envelopes for ``accept`` (the pipeline's):
    what the EventSub source publishes through. It keeps its own ``RandomIds`` stream (the
    envelopes' random ids, trace ids and span ids)."""

    def __init__(self, builder: EnvelopeBuilder, accept: Callable[[OutboundMessage], None]) -> None:
        self.builder = builder
        self._accept = accept
        self._ids = RandomIds()

    def __call__(self, message: TwitchMessage, received_at: float) -> None:
        outbound = message_to_outbound(
            self.builder, message, received_at, self._ids, time.monotonic()
        )
        if outbound is not None:  # None: a message that is not published
            self._accept(outbound)
