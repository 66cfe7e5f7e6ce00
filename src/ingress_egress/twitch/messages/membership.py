"""JOIN and PART: someone (usually the bot itself) entered or left a channel."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.common import channel_of


@dataclass(slots=True)
class Membership:
    channel: str
    login: str
    joined: bool  # True for JOIN, False for PART
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Membership:
        login = (msg.nick or "").lower()
        return cls(channel_of(msg.param(0)), login, msg.command == "JOIN", msg)
