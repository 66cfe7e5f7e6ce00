"""The IRC wire protocol (IRCv3 message tags), independent of Twitch semantics."""

from ingress_egress.protocol.irc import IrcMessage, IrcParseError, parse_line
from ingress_egress.protocol.tags import escape_tag_value, format_tags, unescape_tag_value

__all__ = [
    "IrcMessage",
    "IrcParseError",
    "escape_tag_value",
    "format_tags",
    "parse_line",
    "unescape_tag_value",
]
