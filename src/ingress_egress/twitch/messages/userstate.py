"""USERSTATE and GLOBALUSERSTATE: the bot's own state in a channel / after login."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.chatter import Chatter
from ingress_egress.twitch.messages.common import channel_of


@dataclass(slots=True)
class Userstate:
    channel: str  # "" for GLOBALUSERSTATE
    chatter: Chatter
    emote_sets: list[str]
    is_global: bool
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Userstate:
        is_global = msg.command == "GLOBALUSERSTATE"
        sets = msg.tags.get("emote-sets", "")
        display = msg.tags.get("display-name", "").strip()
        return cls(
            channel="" if is_global else channel_of(msg.param(0)),
            chatter=Chatter.from_tags(msg, display.lower()),
            emote_sets=sets.split(",") if sets else [],
            is_global=is_global,
            irc=msg,
        )
