"""The codec contract: what a codec returns for one read (``Decoded``) and what the IRC
source needs of a codec (``IrcCodec``); the package re-exports both."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from ingress_egress.envelope import OutboundMessage
from ingress_egress.twitch.messages import TwitchMessage


class Decoded(NamedTuple):
    """One read, decoded. ``chat_only``: every line was a chat envelope (the common case:
    ``control`` and ``errors`` are empty and the client has nothing to look at)."""

    envelopes: list[OutboundMessage]  # in line order
    control: list[tuple[str, TwitchMessage]]  # (line, its typed message): non-chat lines
    errors: list[tuple[str, Exception]]  # (line, what parsing or converting it raised)
    chat_only: bool


class IrcCodec(Protocol):
    """What the IRC source needs of a codec (``PythonCodec``, ``NativeCodec``)."""

    name: str  # "python", "native": reported as the service's hot path
    # A chunk of complete lines (CRLF or LF terminated) -> (its lines without line breaks,
    # 1 if it held bytes that are not UTF-8 (replaced) else 0): the transport's splitter.
    split_lines: Callable[[bytes], tuple[list[str], int]]

    def decode(self, lines: list[str], received_at: float) -> Decoded:
        """One read's lines (``received_at``: its receipt time, epoch seconds)."""
        ...
