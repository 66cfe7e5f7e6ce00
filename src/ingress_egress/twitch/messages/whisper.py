"""WHISPER: a private message to the bot. Read, never published (not channel chat)."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.chatter import Chatter
from ingress_egress.twitch.messages.common import EmoteRange, parse_emotes


@dataclass(slots=True)
class Whisper:
    recipient: str
    chatter: Chatter
    text: str
    message_id: str
    thread_id: str
    emotes: list[EmoteRange]
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Whisper:
        tags = msg.tags
        return cls(
            recipient=msg.param(0).lower(),
            chatter=Chatter.from_tags(msg, msg.nick or ""),
            text=msg.param(1),  # whispers have no CTCP ACTION form
            message_id=tags.get("message-id", ""),
            thread_id=tags.get("thread-id", ""),
            emotes=parse_emotes(tags.get("emotes", "")),
            irc=msg,
        )
