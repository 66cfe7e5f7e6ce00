"""The codec contract: what a codec returns for one read (``Decoded``) and what the IRC
source needs of a codec (``IrcCodec``); the package re-exports both."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from ingress_egress.envelope import OutboundMessage
from ingress_egress.twitch.messages import TwitchMessage


class Decoded(NamedTuple):
    """One read, decoded. ``chat_only``: every line was a chat envelope (the common case:
    ``control`` and ``errors`` are empty and the client has nothing to look at).
    ``self_messages``: (channel, Twitch message id) of each chat message the bot itself sent
    (its ``user-id`` is the codec's self user id), in line order; empty unless one is set.
    They are in ``envelopes`` too (``payload.isSelf``), whatever ``chat_only`` says."""

    envelopes: list[OutboundMessage]  # in line order
    control: list[tuple[str, TwitchMessage]]  # (line, its typed message): non-chat lines
    errors: list[tuple[str, Exception]]  # (line, what parsing or converting it raised)
    chat_only: bool
    self_messages: tuple[tuple[str, str], ...] = ()


class IrcCodec(Protocol):
    """What the IRC source needs of a codec (``PythonCodec``, ``NativeCodec``)."""

    name: str  # "python", "native": reported as the service's hot path
    # A chunk of complete lines (CRLF or LF terminated) -> (its lines without line breaks,
    # 1 if it held bytes that are not UTF-8 (replaced) else 0): the transport's splitter.
    split_lines: Callable[[bytes], tuple[list[str], int]]

    def decode(self, lines: list[str], received_at: float) -> Decoded:
        """One read's lines (``received_at``: its receipt time, epoch seconds)."""
        ...

    def set_self_user_id(self, user_id: str | None) -> None:
        """The bot's own user id (None: nobody), learned at run time: its chat messages get
        ``payload.isSelf`` and are listed in ``Decoded.self_messages``. It sets the
        builder's (``EnvelopeBuilder.set_self_user_id``, which validates it)."""
        ...
