"""PRIVMSG: a chat message in a channel (including ``/me`` actions, cheers and replies)."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages.chatter import Chatter
from ingress_egress.twitch.messages.common import (
    EmoteRange,
    event_channel,
    parse_emotes,
    parse_int,
    split_action,
)


@dataclass(slots=True)
class ReplyParent:
    message_id: str
    user_id: str
    user_login: str
    display_name: str
    text: str
    thread_message_id: str
    thread_user_login: str


@dataclass(slots=True)
class SharedChatSource:
    """Set when the message was sent in another channel of a shared chat session."""

    room_id: str
    message_id: str
    badges: str
    badge_info: str


@dataclass(slots=True)
class Privmsg:
    channel: str
    room_id: str
    message_id: str
    chatter: Chatter
    text: str
    is_action: bool
    emotes: list[EmoteRange]
    bits: int | None
    is_mod: bool
    is_subscriber: bool
    first_message: bool
    returning_chatter: bool
    sent_at_ms: int | None
    custom_reward_id: str
    message_kind: str  # msg-id: highlighted-message, user-intro, animated-message, ... or ""
    reply: ReplyParent | None
    shared_source: SharedChatSource | None
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Privmsg:
        # Positional arguments: cheaper than keywords for the dataclass __init__; the order
        # is the field order above.
        tags = msg.tags
        get = tags.get
        params = msg.params
        text, is_action = split_action(params[1] if len(params) > 1 else "")
        return cls(
            event_channel(msg),
            get("room-id", ""),
            get("id", ""),
            Chatter.from_tags(msg, msg.nick or ""),
            text,
            is_action,
            parse_emotes(get("emotes", "")),
            parse_int(get("bits"), "bits"),
            get("mod") == "1",
            get("subscriber") == "1",
            get("first-msg") == "1",
            get("returning-chatter") == "1",
            parse_int(get("tmi-sent-ts"), "tmi-sent-ts"),
            get("custom-reward-id", ""),
            get("msg-id", ""),
            _reply(tags) if "reply-parent-msg-id" in tags else None,
            _shared(tags) if "source-room-id" in tags else None,
            msg,
        )


def _reply(tags: dict[str, str]) -> ReplyParent:
    return ReplyParent(
        message_id=tags.get("reply-parent-msg-id", ""),
        user_id=tags.get("reply-parent-user-id", ""),
        user_login=tags.get("reply-parent-user-login", ""),
        display_name=tags.get("reply-parent-display-name", "").strip(),
        text=tags.get("reply-parent-msg-body", ""),
        thread_message_id=tags.get("reply-thread-parent-msg-id", ""),
        thread_user_login=tags.get("reply-thread-parent-user-login", ""),
    )


def _shared(tags: dict[str, str]) -> SharedChatSource:
    return SharedChatSource(
        room_id=tags.get("source-room-id", ""),
        message_id=tags.get("source-id", ""),
        badges=tags.get("source-badges", ""),
        badge_info=tags.get("source-badge-info", ""),
    )
