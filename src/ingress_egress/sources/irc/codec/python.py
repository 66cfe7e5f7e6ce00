"""The Python codec: every line parsed, typed and converted by the Python modules.

It is the reference of the native codec, and decodes the lines that codec declines
(``decode_line``, with the line's own slice of the read's ``random_hex``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope import ids as envelope_ids
from ingress_egress.envelope.ids import HEX_PER_LINE, LineIds
from ingress_egress.envelope.outbound import message_to_outbound
from ingress_egress.protocol import parse_line
from ingress_egress.sources.irc import transport
from ingress_egress.sources.irc.codec.base import Decoded
from ingress_egress.twitch.messages import Privmsg, TwitchMessage, from_irc


class PythonCodec:
    """Decodes the reads of every connection of a source with one ``EnvelopeBuilder`` (its
    clocks and ROOMSTATE memory are per source). ``random_hex(n)``: a read's ids, 80 hex
    characters per line; ``monotonic``: the reads' monotonic receipt time."""

    name = "python"

    def __init__(
        self,
        builder: EnvelopeBuilder,
        *,
        random_hex: Callable[[int], str] = envelope_ids.random_hex,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.builder = builder
        # An instance attribute: a Python function set on the class would bind as a method.
        self.split_lines: Callable[[bytes], tuple[list[str], int]] = transport.split_lines
        self._random_hex = random_hex
        self._monotonic = monotonic

    def decode(self, lines: list[str], received_at: float) -> Decoded:
        hexes = self._random_hex(len(lines))
        monotonic = self._monotonic()
        envelopes: list[OutboundMessage] = []
        control: list[tuple[str, TwitchMessage]] = []
        errors: list[tuple[str, Exception]] = []
        selves: list[tuple[str, str]] = []
        decode_line = self.decode_line
        for index, line in enumerate(lines):
            start = HEX_PER_LINE * index
            ids80 = hexes[start : start + HEX_PER_LINE]
            decode_line(line, ids80, received_at, monotonic, envelopes, control, errors, selves)
        return Decoded(envelopes, control, errors, not control and not errors, tuple(selves))

    def set_self_user_id(self, user_id: str | None) -> None:
        self.builder.set_self_user_id(user_id)

    def decode_line(
        self,
        line: str,
        ids80: str,
        received_at: float,
        monotonic: float,
        envelopes: list[OutboundMessage],
        control: list[tuple[str, TwitchMessage]],
        errors: list[tuple[str, Exception]],
        selves: list[tuple[str, str]] | None = None,
    ) -> None:
        """One line, appended where it belongs: a chat line to ``envelopes`` (or, when it
        is not published, to ``control``), and its (channel, id) to ``selves`` when the bot
        sent it; any other line to ``control`` and, when it is an event, its envelope to
        ``envelopes``; what parsing or converting it raised to ``errors`` (it costs only
        this line). ``ids80``: the line's slice of the read's ``random_hex``."""
        try:
            typed = from_irc(parse_line(line))
        except Exception as error:
            errors.append((line, error))
            return
        chat = type(typed) is Privmsg
        if not chat:
            control.append((line, typed))
        try:
            outbound = message_to_outbound(
                self.builder, typed, received_at, LineIds(ids80), monotonic
            )
        except Exception as error:
            errors.append((line, error))
            return
        if outbound is not None:
            envelopes.append(outbound)
            if selves is not None and isinstance(typed, Privmsg) and self._is_self(typed):
                selves.append((typed.channel, typed.message_id))
        elif chat:  # a chat line the builder does not publish: the client may look at it
            control.append((line, typed))

    def _is_self(self, message: Privmsg) -> bool:
        """The bot sent it (its envelope says ``isSelf``) and it can be confirmed (an id)."""
        return bool(message.message_id) and message.chatter.user_id == self.builder.self_user_id
