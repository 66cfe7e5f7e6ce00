"""USERNOTICE: subs, resubs, gifts, raids, announcements... every ``msg-id``, unknown ones kept."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.chatter import Chatter
from ingress_egress.twitch.messages.common import EmoteRange, event_channel, parse_emotes, parse_int

PARAM_PREFIX = "msg-param-"


@dataclass(slots=True)
class Usernotice:
    channel: str
    room_id: str
    message_id: str
    notice_type: str  # the msg-id tag: sub, resub, subgift, raid, announcement, ...
    system_message: str
    chatter: Chatter
    text: str  # what the user wrote along with the event, "" when nothing
    emotes: list[EmoteRange]
    params: dict[str, str]  # msg-param-* tags without the prefix
    is_mod: bool
    is_subscriber: bool
    sent_at_ms: int | None
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Usernotice:
        tags = msg.tags
        return cls(
            channel=event_channel(msg),
            room_id=tags.get("room-id", ""),
            message_id=tags.get("id", ""),
            notice_type=tags.get("msg-id", ""),
            system_message=tags.get("system-msg", "").strip(),
            chatter=Chatter.from_tags(msg),
            text=msg.param(1),
            emotes=parse_emotes(tags.get("emotes", "")),
            params={
                key[len(PARAM_PREFIX) :]: value
                for key, value in tags.items()
                if key.startswith(PARAM_PREFIX)
            },
            is_mod=tags.get("mod") == "1",
            is_subscriber=tags.get("subscriber") == "1",
            sent_at_ms=parse_int(tags.get("tmi-sent-ts"), "tmi-sent-ts"),
            irc=msg,
        )
