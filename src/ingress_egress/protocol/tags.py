"""IRCv3 message-tag values: escaping per https://ircv3.net/specs/extensions/message-tags.

``\\:`` -> ``;``, ``\\s`` -> space, ``\\\\`` -> backslash, ``\\r`` -> CR, ``\\n`` -> LF; any
other escaped character stands for itself (the backslash is dropped) and a lone trailing
backslash is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_ESCAPED = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n", "": ""}
_ESCAPE_RE = re.compile(r"\\(.?)", re.DOTALL)
_TO_ESCAPE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


def _replace(match: re.Match[str]) -> str:
    char = match.group(1)
    return _ESCAPED.get(char, char)


def unescape_tag_value(value: str) -> str:
    if "\\" not in value:
        return value
    return _ESCAPE_RE.sub(_replace, value)


def escape_tag_value(value: str) -> str:
    return value.translate(_TO_ESCAPE)


def format_tags(tags: Mapping[str, str]) -> str:
    """``{"a": "x y", "b": ""}`` -> ``"@a=x\\sy;b="`` (empty string when there are no tags)."""
    if not tags:
        return ""
    return "@" + ";".join(f"{key}={escape_tag_value(value)}" for key, value in tags.items())
