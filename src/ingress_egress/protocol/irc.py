"""One IRC line -> ``IrcMessage``: IRCv3 tags, prefix (nick!user@host), command, params.

This runs for every chat line, so it uses ``str.find``/``split`` rather than a regex and
unescapes a tag value only when it holds a backslash.
"""

from __future__ import annotations

from ingress_egress.protocol.tags import unescape_tag_value


class IrcParseError(ValueError):
    """The line is not IRC, or not a valid Twitch event (a number beyond 64 bits, a chat
    event without a channel). ``reason`` is short and stable; ``tags`` is what was decoded."""

    def __init__(self, reason: str, line: str = "", tags: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.tags = tags or {}


class IrcMessage:
    __slots__ = ("command", "host", "nick", "params", "prefix", "raw", "tags", "user")

    def __init__(
        self,
        tags: dict[str, str],
        prefix: str | None,
        command: str,
        params: list[str],
        raw: str = "",
    ) -> None:
        self.tags = tags
        self.prefix = prefix
        self.command = command
        self.params = params
        self.raw = raw
        self.nick: str | None = None
        self.user: str | None = None
        self.host: str | None = None
        if prefix is not None:
            self._split_prefix(prefix)

    def _split_prefix(self, prefix: str) -> None:
        nick, at, host = prefix.partition("@")
        if at:
            self.host = host
        nick, bang, user = nick.partition("!")
        if bang:
            self.user = user
        if at or bang or "." not in nick:
            self.nick = nick
        else:
            self.host = nick  # a bare server name such as "tmi.twitch.tv"

    @property
    def trailing(self) -> str:
        """The last parameter, or "" when there is none."""
        return self.params[-1] if self.params else ""

    def param(self, index: int, default: str = "") -> str:
        return self.params[index] if index < len(self.params) else default

    def __repr__(self) -> str:
        return (
            f"IrcMessage(command={self.command!r}, prefix={self.prefix!r}, "
            f"params={self.params!r}, tags={len(self.tags)} tags)"
        )


def parse_tags(text: str) -> dict[str, str]:
    """``a=1;b;c=x\\sy`` -> ``{"a": "1", "b": "", "c": "x y"}``; a later duplicate key wins."""
    try:
        # Fast path: every item is key=value (Twitch always sends the "="), built in C.
        tags = dict([item.split("=", 1) for item in text.split(";")])
    except ValueError:
        return _parse_tags_slow(text)
    tags.pop("", None)
    if "\\" in text:
        for key, value in tags.items():
            if "\\" in value:
                tags[key] = unescape_tag_value(value)
    return tags


def _parse_tags_slow(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in text.split(";"):
        key, _, value = item.partition("=")
        if key:
            tags[key] = unescape_tag_value(value)
    return tags


def parse_line(line: str) -> IrcMessage:
    """Parse one line (a trailing CR/LF is ignored). Raises ``IrcParseError``, nothing else."""
    raw = line.rstrip("\r\n")
    tags: dict[str, str] = {}
    pos = 0
    if raw.startswith("@"):
        space = raw.find(" ")
        if space == -1:
            raise IrcParseError("partial message: no space after tags", raw, parse_tags(raw[1:]))
        tags = parse_tags(raw[1:space])
        pos = _skip_spaces(raw, space)
    prefix = None
    if raw.startswith(":", pos):
        space = raw.find(" ", pos)
        if space == -1:
            raise IrcParseError("no command after prefix", raw, tags)
        prefix = raw[pos + 1 : space]
        if not prefix:
            raise IrcParseError("empty prefix", raw, tags)
        pos = space
    pos = _skip_spaces(raw, pos)
    if pos >= len(raw):
        raise IrcParseError("no command" if raw else "empty line", raw, tags)
    space = raw.find(" ", pos)
    if space == -1:
        return IrcMessage(tags, prefix, raw[pos:], [], raw)
    command = raw[pos:space]
    return IrcMessage(tags, prefix, command, _parse_params(raw, space + 1), raw)


def _skip_spaces(raw: str, pos: int) -> int:
    while pos < len(raw) and raw[pos] == " ":
        pos += 1
    return pos


def _parse_params(raw: str, pos: int) -> list[str]:
    colon = raw.find(" :", pos - 1)
    if colon == -1:
        return raw[pos:].split()
    params = raw[pos:colon].split()
    params.append(raw[colon + 2 :])
    return params
