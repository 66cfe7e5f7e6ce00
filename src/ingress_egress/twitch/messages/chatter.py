"""Who sent a message: the user tags PRIVMSG, USERNOTICE and WHISPER share."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.common import Badge, parse_badges, parse_color


@dataclass(slots=True)
class Chatter:
    user_id: str
    login: str
    display_name: str
    color: str  # "#RRGGBB" or "" when the user never chose one
    badges: tuple[Badge, ...]
    badge_info: tuple[Badge, ...]

    @classmethod
    def from_tags(cls, msg: IrcMessage, login: str | None = None) -> Chatter:
        tags = msg.tags
        get = tags.get
        if login is None:
            login = get("login") or msg.nick or ""
        display = get("display-name", "")
        if display[-1:] == " " or display[:1] == " ":
            display = display.strip()
        return cls(
            get("user-id", ""),
            login.lower(),
            display or login,
            parse_color(get("color", "")),
            parse_badges(get("badges", "")),
            parse_badges(get("badge-info", "")),
        )

    def has_badge(self, name: str) -> bool:
        for badge in self.badges:  # noqa: SIM110 - a loop, not any(<genexpr>): per envelope
            if badge[0] == name:
                return True
        return False
