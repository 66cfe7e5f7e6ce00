"""Twitch refuses a text identical to the bot's previous one in that channel within 30 s
(``msg_duplicate``), unless the bot is broadcaster, moderator or VIP there. The comparison
ignores surrounding whitespace.

``distinct`` (the default) makes such a repeat differ by ``REPEAT_SUFFIX`` (a space and
U+034F, invisible; Twitch now strips U+E0000, the suffix clients used before), toggled: the
next repeat of the same text goes without it again, so consecutive messages always differ.
It does so whatever the bot's role: the suffix costs nothing, and a role just revoked (a
USERSTATE on its way) cannot then cost the message. ``drop`` reports the repeat ``dropped``
with Twitch's own reason, ``msg_duplicate``, unless the bot is privileged in the channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ingress_egress.egress.text import BLANK, REPEAT_SUFFIX

RepeatPolicy = Literal["distinct", "drop"]
DUPLICATE_WINDOW_S = 30.0
DUPLICATE_REASON = "msg_duplicate"


@dataclass(frozen=True, slots=True)
class LastSent:
    """The bot's previous message in a channel, and when it was sent (epoch seconds)."""

    text: str
    at: float


class RepeatRefused(Exception):
    """The text repeats the previous one and the policy is ``drop``."""

    reason = DUPLICATE_REASON


def is_repeat(text: str, previous: LastSent | None, now: float, window_s: float) -> bool:
    """Twitch would see ``text`` as the same message as ``previous`` at ``now``."""
    if previous is None or now - previous.at >= window_s:
        return False
    return text.strip(BLANK) == previous.text.strip(BLANK)


def avoid_repeat(
    text: str,
    previous: LastSent | None,
    now: float,
    *,
    privileged: bool,
    policy: RepeatPolicy = "distinct",
    window_s: float = DUPLICATE_WINDOW_S,
) -> str:
    """The text to send in place of ``text``; raises ``RepeatRefused`` under ``drop``.

    ``window_s``: pass the limiter's 30 s + margin, so a clock or network delay cannot
    bring an older message within Twitch's 30 s.
    """
    if previous is None or not is_repeat(text, previous, now, window_s):
        return text
    if policy == "drop":
        if privileged:
            return text
        raise RepeatRefused(f"identical to the previous message, sent {now - previous.at:.1f}s ago")
    return toggle_suffix(text)


def toggle_suffix(text: str) -> str:
    """``text`` with ``REPEAT_SUFFIX`` added, or taken off when it already ends with it."""
    if text.endswith(REPEAT_SUFFIX):
        return text[: -len(REPEAT_SUFFIX)]
    return text + REPEAT_SUFFIX
