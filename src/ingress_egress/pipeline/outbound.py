"""Typed message -> ``OutboundMessage``: the envelope encoded once, bus metadata alongside.

``message_to_outbound`` is the one conversion the pipeline makes per event. Its reference,
``_message_to_outbound_py``, is ``EnvelopeBuilder.build`` then ``to_outbound``; with the C
extension a twin writes a PRIVMSG's JSON directly (no envelope dict, no orjson), byte for
byte what the reference produces, and hands everything else to the reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson

from ingress_egress import _native
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import EnvelopeBuilder, encode_envelope, traceparent
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.protocol import parse_line
from ingress_egress.twitch.messages import Privmsg, TwitchMessage, from_irc


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


def _lines_to_outbound_py(
    lines: list[str],
    builder: EnvelopeBuilder,
    received_at: float | None,
    span_ids: RandomIds,
    monotonic: float,
) -> list[OutboundMessage | TwitchMessage | Exception]:
    """A read loop's batch in one call: per line, its ``OutboundMessage`` (a PRIVMSG,
    converted as ``message_to_outbound`` does), its typed message (any other line: control
    handlers and ``Pipeline.submit`` take it from there) or the exception that parsing or
    converting it raised (``IrcParseError`` for a line that is not IRC)."""
    out: list[OutboundMessage | TwitchMessage | Exception] = []
    for line in lines:
        try:
            typed = from_irc(parse_line(line))
            if type(typed) is Privmsg:
                converted = message_to_outbound(builder, typed, received_at, span_ids, monotonic)
                out.append(typed if converted is None else converted)
            else:
                out.append(typed)
        except Exception as error:
            out.append(error)
    return out


LinesToOutbound = Callable[
    [list[str], EnvelopeBuilder, "float | None", RandomIds, float],
    "list[OutboundMessage | TwitchMessage | Exception]",
]
lines_to_outbound: LinesToOutbound = _lines_to_outbound_py
if "outbound" in _native.ACTIVE and _native.configure(
    "lines_to_outbound", "configure_lines_to_outbound", _lines_to_outbound_py
):  # pragma: no branch
    lines_to_outbound = _native.entry("lines_to_outbound")


def from_spooled(data: bytes, span_id: str, received_at: float) -> OutboundMessage:
    """A spooled envelope read back: the metadata is derived by ``to_outbound`` (one place),
    the bytes stay exactly those first written (so ids and payload never change on replay)."""
    message = to_outbound(orjson.loads(data), span_id, received_at)
    message.data = data
    return message
