"""A command's text -> the texts of the chat messages that carry it (docs/egress.md, "Text").

* Control characters (C0 including CR, LF, NUL and TAB; DEL; C1) become a space: on IRC a
  CR or LF would end the line and start a command of the sender's choosing, NUL is refused
  by Twitch, and a space (rather than nothing) keeps "line one\\nline two" two words.
* Surrounding whitespace goes (Twitch trims it anyway).
* Twitch takes at most ``MESSAGE_MAX_CODE_POINTS`` code points per message. A longer text is
  split at whitespace into parts sent in order (``long_text="split"``), or refused
  (``"drop"``: ``TextTooLong``); a single word longer than a part is cut where it must be.
* A part whose first visible character is ``/`` or ``.`` would be taken as a chat command
  (IRC ran them until 2023; Helix strips or drops them today): ``NEUTRALISER`` (U+034F
  COMBINING GRAPHEME JOINER, invisible) goes in front, so the part is ordinary text.
* Each part's budget keeps room for that prefix, for the repeat suffix (``repeats.py``) and,
  for an action, for ``/me `` (``ACTION_RESERVE``): whatever is added later, no message is
  ever longer than the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MESSAGE_MAX_CODE_POINTS = 500
NEUTRALISER = "\u034f"
REPEAT_SUFFIX = " \u034f"  # repeats.py: what makes a repeat distinct
ACTION_RESERVE = len("/me ")
LongText = Literal["split", "drop"]

_CONTROLS = re.compile("[\u0000-\u001f\u007f-\u009f]")
# Whitespace: what splits words and what is trimmed (Python's notion, U+FEFF included).
BLANK = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_COMMAND_START = ("/", ".")


class TextTooLong(Exception):
    """The text needs more than one message and ``long_text`` is ``"drop"``."""


@dataclass(frozen=True, slots=True)
class PreparedText:
    """The messages for one command, in order; ``is_action``: each is sent as ``/me``."""

    parts: tuple[str, ...]
    is_action: bool


def part_budget(is_action: bool) -> int:
    """Code points of the command's own text one message may carry."""
    reserve = len(NEUTRALISER) + len(REPEAT_SUFFIX) + (ACTION_RESERVE if is_action else 0)
    return MESSAGE_MAX_CODE_POINTS - reserve


def prepare_text(text: str, is_action: bool, long_text: LongText = "split") -> PreparedText:
    """The parts to send for ``text``; raises ``TextTooLong`` (only with ``"drop"``).

    A text with nothing visible gives no parts (the command decoder refuses those first).
    """
    clean = _CONTROLS.sub(" ", text).strip(BLANK)
    budget = part_budget(is_action)
    if len(clean) > budget and long_text == "drop":
        raise TextTooLong(f"{len(clean)} code points, one message carries {budget}")
    parts = tuple(neutralise(part) for part in split_words(clean, budget))
    return PreparedText(parts, is_action)


def split_words(text: str, budget: int) -> list[str]:
    """``text`` (trimmed) in pieces of at most ``budget`` code points, cut at whitespace
    where possible; the whitespace at each cut is dropped."""
    parts = []
    rest = text
    while len(rest) > budget:
        cut = _last_blank(rest, budget)
        head = rest[:cut].rstrip(BLANK) if cut > 0 else rest[:budget]
        parts.append(head)
        rest = rest[len(head) :].lstrip(BLANK)
    if rest:
        parts.append(rest)
    return parts


def _last_blank(text: str, budget: int) -> int:
    """Index of the last whitespace at or before ``budget`` (a cut there leaves at most
    ``budget`` before it); 0 when the first word alone is longer."""
    for index in range(budget, 0, -1):
        if text[index] in BLANK:
            return index
    return 0


def neutralise(part: str) -> str:
    """``part`` with ``NEUTRALISER`` in front when it would start a chat command."""
    return NEUTRALISER + part if part.lstrip(BLANK).startswith(_COMMAND_START) else part


def irc_body(part: str, is_action: bool) -> str:
    """The PRIVMSG text: an action is CTCP ACTION (what ``/me`` sends over IRC)."""
    return f"\x01ACTION {part}\x01" if is_action else part


def helix_message(part: str, is_action: bool) -> str:
    """The Helix ``message``. Helix has no action: a leading ``/me`` is taken as a command
    and stripped or refused (twitchdev/issues#1019), so an action goes as plain text."""
    del is_action
    return part
