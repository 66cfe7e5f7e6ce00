"""Typed Twitch chat messages, one module per IRC command, each built from a parsed line."""

from __future__ import annotations

from collections.abc import Callable

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.chatter import Chatter
from ingress_egress.twitch.messages.clearchat import Clearchat
from ingress_egress.twitch.messages.clearmsg import Clearmsg
from ingress_egress.twitch.messages.common import Badge, EmoteRange
from ingress_egress.twitch.messages.connection import (
    Capability,
    Numeric,
    Ping,
    Pong,
    Reconnect,
    Unknown,
)
from ingress_egress.twitch.messages.membership import Membership
from ingress_egress.twitch.messages.notice import Notice
from ingress_egress.twitch.messages.privmsg import Privmsg, ReplyParent, SharedChatSource
from ingress_egress.twitch.messages.roomstate import Roomstate
from ingress_egress.twitch.messages.usernotice import Usernotice
from ingress_egress.twitch.messages.userstate import Userstate
from ingress_egress.twitch.messages.whisper import Whisper

TwitchMessage = (
    Privmsg | Usernotice | Clearchat | Clearmsg | Roomstate | Userstate | Notice | Whisper
    | Membership | Ping | Pong | Reconnect | Capability | Numeric | Unknown
)  # fmt: skip

_BY_COMMAND: dict[str, Callable[[IrcMessage], TwitchMessage]] = {
    "PRIVMSG": Privmsg.from_irc,
    "USERNOTICE": Usernotice.from_irc,
    "CLEARCHAT": Clearchat.from_irc,
    "CLEARMSG": Clearmsg.from_irc,
    "ROOMSTATE": Roomstate.from_irc,
    "USERSTATE": Userstate.from_irc,
    "GLOBALUSERSTATE": Userstate.from_irc,
    "NOTICE": Notice.from_irc,
    "WHISPER": Whisper.from_irc,
    "JOIN": Membership.from_irc,
    "PART": Membership.from_irc,
    "PING": Ping.from_irc,
    "PONG": Pong.from_irc,
    "RECONNECT": Reconnect.from_irc,
    "CAP": Capability.from_irc,
}


def from_irc(msg: IrcMessage) -> TwitchMessage:
    """The typed message for a parsed line; ``Unknown`` for commands Twitch does not document."""
    build = _BY_COMMAND.get(msg.command)
    if build is not None:
        return build(msg)
    if len(msg.command) == 3 and msg.command.isdigit():
        return Numeric.from_irc(msg)
    return Unknown.from_irc(msg)


__all__ = [
    "Badge",
    "Capability",
    "Chatter",
    "Clearchat",
    "Clearmsg",
    "EmoteRange",
    "Membership",
    "Notice",
    "Numeric",
    "Ping",
    "Pong",
    "Privmsg",
    "Reconnect",
    "ReplyParent",
    "Roomstate",
    "SharedChatSource",
    "TwitchMessage",
    "Unknown",
    "Usernotice",
    "Userstate",
    "Whisper",
    "from_irc",
]
