"""NOTICE: server messages such as ``msg_channel_suspended`` or a failed login."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.common import channel_of

LOGIN_FAILURES = (
    "Login authentication failed",
    "Login unsuccessful",
    "Improperly formatted auth",
    "Invalid NICK",
)


@dataclass(slots=True)
class Notice:
    channel: str  # "" for "NOTICE *"
    notice_id: str  # the msg-id tag, "" when absent (as for login failures)
    text: str
    irc: IrcMessage

    @property
    def is_login_failure(self) -> bool:
        return any(self.text.startswith(prefix) for prefix in LOGIN_FAILURES)

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Notice:
        target = msg.param(0)
        channel = channel_of(target) if target.startswith("#") else ""
        return cls(channel, msg.tags.get("msg-id", ""), msg.param(1), msg)
