"""The IRC source's codec: one read's raw lines -> envelopes, control messages and errors.

``IrcCodec.decode`` is the one call the read loop makes per read. It converts every line:

* a chat line (PRIVMSG) straight to its ``OutboundMessage``: with the C extension the whole
  batch goes through ``lines_to_outbound`` in one call (the direct path writes the envelope's
  JSON from the raw line, byte for byte what the reference writes);
* any other line to its typed message, kept in ``control`` for the client (PING, RECONNECT,
  JOIN echoes, NOTICEs, ROOMSTATE...) and, when it is an event (USERNOTICE, CLEARCHAT,
  ROOMSTATE, ...), also to its envelope, in line order among the chat envelopes;
* a line that is not IRC, or whose conversion raised, to ``errors`` with the line.

The pipeline then accepts ``envelopes`` as they are; nothing here publishes.
``_lines_to_outbound_py`` is the reference of the C batch call; the C twin returns exactly
what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple, cast

from ingress_egress import _native
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.envelope.outbound import message_to_outbound
from ingress_egress.protocol import parse_line
from ingress_egress.twitch.messages import Privmsg, TwitchMessage, from_irc


def _lines_to_outbound_py(
    lines: list[str],
    builder: EnvelopeBuilder,
    received_at: float | None,
    span_ids: RandomIds,
    monotonic: float,
) -> list[OutboundMessage | TwitchMessage | Exception]:
    """A read loop's batch in one call: per line, its ``OutboundMessage`` (a PRIVMSG,
    converted as ``message_to_outbound`` does), its typed message (any other line) or the
    exception that parsing or converting it raised (``IrcParseError`` for a line that is not
    IRC)."""
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


class Decoded(NamedTuple):
    """One read, decoded. ``chat_only``: every line was a chat envelope (the common case:
    ``control`` and ``errors`` are empty and the client has nothing to look at)."""

    envelopes: list[OutboundMessage]  # in line order
    control: list[tuple[str, TwitchMessage]]  # (line, its typed message): non-chat lines
    errors: list[tuple[str, Exception]]  # (line, what parsing or converting it raised)
    chat_only: bool


class IrcCodec:
    """Decodes the reads of every connection of a source with one ``EnvelopeBuilder`` (its
    clocks and ROOMSTATE memory are per source) and one span-id stream."""

    def __init__(self, builder: EnvelopeBuilder) -> None:
        self.builder = builder
        self._span_ids = RandomIds()

    def decode(self, lines: list[str], received_at: float) -> Decoded:
        monotonic = time.monotonic()
        items = lines_to_outbound(lines, self.builder, received_at, self._span_ids, monotonic)
        if items and type(items[0]) is OutboundMessage and len(set(map(type, items))) == 1:
            return Decoded(cast("list[OutboundMessage]", items), [], [], True)
        envelopes: list[OutboundMessage] = []
        control: list[tuple[str, TwitchMessage]] = []
        errors: list[tuple[str, Exception]] = []
        for line, item in zip(lines, items, strict=True):
            if isinstance(item, OutboundMessage):
                envelopes.append(item)
            elif isinstance(item, Exception):
                errors.append((line, item))
            else:
                control.append((line, item))
                self._encode(line, item, received_at, monotonic, envelopes, errors)
        return Decoded(envelopes, control, errors, False)

    def _encode(
        self,
        line: str,
        message: TwitchMessage,
        received_at: float,
        monotonic: float,
        envelopes: list[OutboundMessage],
        errors: list[tuple[str, Exception]],
    ) -> None:
        """A non-chat line's envelope, if it is an event; an error costs only this line."""
        try:
            outbound = message_to_outbound(
                self.builder, message, received_at, self._span_ids, monotonic
            )
        except Exception as error:
            errors.append((line, error))
            return
        if outbound is not None:
            envelopes.append(outbound)
