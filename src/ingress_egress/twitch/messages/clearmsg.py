"""CLEARMSG: one message deleted by a moderator."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.common import event_channel, parse_int, split_action


@dataclass(slots=True)
class Clearmsg:
    channel: str
    room_id: str
    target_login: str
    target_message_id: str
    text: str  # the deleted message
    sent_at_ms: int | None
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Clearmsg:
        tags = msg.tags
        return cls(
            channel=event_channel(msg),
            room_id=tags.get("room-id", ""),
            target_login=tags.get("login", "").lower(),
            target_message_id=tags.get("target-msg-id", ""),
            text=split_action(msg.param(1))[0],
            sent_at_ms=parse_int(tags.get("tmi-sent-ts"), "tmi-sent-ts"),
            irc=msg,
        )
