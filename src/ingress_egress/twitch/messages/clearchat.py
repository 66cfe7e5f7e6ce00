"""CLEARCHAT: a ban, a timeout (``ban-duration``), or the whole chat cleared."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.common import event_channel, parse_int


@dataclass(slots=True)
class Clearchat:
    channel: str
    room_id: str
    action: str  # "ban" | "timeout" | "clear"
    target_login: str
    target_user_id: str
    duration_seconds: int | None
    sent_at_ms: int | None
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Clearchat:
        tags = msg.tags
        target = msg.param(1).lower()
        duration = parse_int(tags.get("ban-duration"), "ban-duration")
        if not target:
            action = "clear"
        elif duration is not None:
            action = "timeout"
        else:
            action = "ban"
        return cls(
            channel=event_channel(msg),
            room_id=tags.get("room-id", ""),
            action=action,
            target_login=target,
            target_user_id=tags.get("target-user-id", ""),
            duration_seconds=duration,
            sent_at_ms=parse_int(tags.get("tmi-sent-ts"), "tmi-sent-ts"),
            irc=msg,
        )
