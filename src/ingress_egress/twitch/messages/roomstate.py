"""ROOMSTATE: a channel's chat settings; a partial one carries only what changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.common import event_channel, parse_int

# tag -> (settings key, kind). Booleans are "0"/"1"; followers-only is minutes, -1 = off.
SETTINGS = {
    "emote-only": ("emoteOnly", bool),
    "followers-only": ("followersOnlyMinutes", int),
    "r9k": ("uniqueChat", bool),
    "slow": ("slowSeconds", int),
    "subs-only": ("subscribersOnly", bool),
    "rituals": ("rituals", bool),
}


@dataclass(slots=True)
class Roomstate:
    channel: str
    room_id: str
    settings: dict[str, Any]  # only the settings present in the line
    irc: IrcMessage

    @property
    def is_full(self) -> bool:
        return all(tag in self.irc.tags for tag in ("emote-only", "r9k", "slow", "subs-only"))

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Roomstate:
        settings: dict[str, Any] = {}
        for tag, (key, kind) in SETTINGS.items():
            value = msg.tags.get(tag)
            if value is None or value == "":
                continue
            settings[key] = value == "1" if kind is bool else parse_int(value, tag)
        return cls(event_channel(msg), msg.tags.get("room-id", ""), settings, msg)
