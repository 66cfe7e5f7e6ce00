"""EventSub chat events -> the typed messages the IRC path produces.

Each event is rewritten as the IRC line Twitch would have sent for it (the same tags, decoded)
and parsed by the same ``twitch.messages`` classes, so one ``EnvelopeBuilder`` builds both
transports' envelopes and the contract cannot diverge. ``payload.raw.tags`` therefore holds
these IRC-equivalent tags (docs/envelope.md, "EventSub").
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

from ingress_egress.protocol import IrcMessage
from ingress_egress.twitch.messages import (
    Clearchat,
    Clearmsg,
    Privmsg,
    Roomstate,
    TwitchMessage,
    Usernotice,
)

Event = dict[str, Any]

CHAT_MESSAGE = "channel.chat.message"
CHAT_NOTIFICATION = "channel.chat.notification"
CHAT_CLEAR = "channel.chat.clear"
CHAT_CLEAR_USER = "channel.chat.clear_user_messages"
CHAT_MESSAGE_DELETE = "channel.chat.message_delete"
CHAT_SETTINGS = "channel.chat_settings.update"
SUBSCRIPTION_TYPES = (
    CHAT_MESSAGE,
    CHAT_NOTIFICATION,
    CHAT_CLEAR,
    CHAT_CLEAR_USER,
    CHAT_MESSAGE_DELETE,
    CHAT_SETTINGS,
)

# channel.chat.message message_type -> IRC msg-id ("text" has none).
MESSAGE_KINDS = {
    "channel_points_highlighted": "highlighted-message",
    "channel_points_sub_only": "skip-subs-mode-message",
    "user_intro": "user-intro",
    "power_ups_message_effect": "animated-message",
    "power_ups_gigantified_emote": "gigantified-emote-message",
}

# channel.chat.notification notice_type -> IRC USERNOTICE msg-id; unknown ones are kept.
NOTICE_TYPES = {
    "sub": "sub",
    "resub": "resub",
    "sub_gift": "subgift",
    "community_sub_gift": "submysterygift",
    "gift_paid_upgrade": "giftpaidupgrade",
    "prime_paid_upgrade": "primepaidupgrade",
    "pay_it_forward": "payforward",
    "raid": "raid",
    "unraid": "unraid",
    "announcement": "announcement",
    "bits_badge_tier": "bitsbadgetier",
    "charity_donation": "charitydonation",
    "watch_streak": "viewermilestone",
}

# Per notice type: (EventSub field, IRC msg-param name). Fields not listed are kept too, under
# their EventSub name in kebab-case (so nothing Twitch sent is lost).
NOTICE_PARAMS: dict[str, tuple[tuple[str, str], ...]] = {
    "sub": (("duration_months", "multimonth-duration"),),
    "resub": (
        ("cumulative_months", "cumulative-months"),
        ("streak_months", "streak-months"),
        ("duration_months", "multimonth-duration"),
        ("is_gift", "was-gifted"),
    ),
    "sub_gift": (
        ("duration_months", "gift-months"),
        ("cumulative_total", "sender-count"),
        ("recipient_user_id", "recipient-id"),
        ("recipient_user_login", "recipient-user-name"),
        ("recipient_user_name", "recipient-display-name"),
        ("community_gift_id", "community-gift-id"),
    ),
    "community_sub_gift": (
        ("total", "mass-gift-count"),
        ("cumulative_total", "sender-count"),
        ("id", "community-gift-id"),
    ),
    "raid": (
        ("user_login", "login"),
        ("user_name", "displayName"),
        ("viewer_count", "viewerCount"),
        ("profile_image_url", "profileImageURL"),
    ),
    "bits_badge_tier": (("tier", "threshold"),),
}

# Twitch's stand-in for an anonymous gifter on IRC.
ANONYMOUS = {"login": "ananonymousgifter", "display-name": "AnAnonymousGifter", "id": "274598607"}


def settings_event(helix: dict[str, Any], login: str) -> Event:
    """Helix "Get Chat Settings" -> the shape of a ``channel.chat_settings.update`` event, so a
    channel's settings can be published on subscribing, as IRC sends a ROOMSTATE on JOIN."""
    return {
        "broadcaster_user_id": helix.get("broadcaster_id"),
        "broadcaster_user_login": login,
        "emote_mode": helix.get("emote_mode"),
        "follower_mode": helix.get("follower_mode"),
        "follower_mode_duration_minutes": helix.get("follower_mode_duration"),
        "slow_mode": helix.get("slow_mode"),
        "slow_mode_wait_time_seconds": helix.get("slow_mode_wait_time"),
        "subscriber_mode": helix.get("subscriber_mode"),
        "unique_chat_mode": helix.get("unique_chat_mode"),
    }


class UnknownEvent(ValueError):
    """A notification of a type this mapping does not handle (counted, never fatal)."""


def timestamp_ms(value: str | None) -> int | None:
    """RFC 3339 with nanoseconds (``2023-07-19T14:56:51.634234626Z``) -> epoch milliseconds."""
    if not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    main, dot, rest = text.partition(".")
    if dot:  # fromisoformat takes at most 6 fraction digits
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{main}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


def self_message(message: TwitchMessage, bot_user_id: str) -> tuple[str, str] | None:
    """(channel, message id) of a chat message the bot itself sent (its ``chatter_user_id``
    is ``bot_user_id``, which the builder then marks ``isSelf``), else None. Only chat
    messages with an id: what egress/echo.py confirms sends with, as the IRC codec's
    ``Decoded.self_messages``."""
    if not bot_user_id or type(message) is not Privmsg or not message.message_id:
        return None
    if message.chatter.user_id != bot_user_id:
        return None
    return message.channel, message.message_id


class EventMapper:
    """Stateful only for ``message_delete``: Twitch sends no text there, IRC does, so the
    texts of recent messages are remembered (bounded) to fill it in."""

    def __init__(self, remember: int = 10_000) -> None:
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._remember = remember

    def to_message(
        self, subscription_type: str, event: Event, sent_at_ms: int | None
    ) -> TwitchMessage:
        tags: dict[str, str] = {"room-id": _str(event.get("broadcaster_user_id"))}
        if sent_at_ms is not None:
            tags["tmi-sent-ts"] = str(sent_at_ms)
        channel = "#" + _str(event.get("broadcaster_user_login")).lower()
        if subscription_type == CHAT_MESSAGE:
            return self._privmsg(event, tags, channel)
        if subscription_type == CHAT_NOTIFICATION:
            return _usernotice(event, tags, channel)
        if subscription_type == CHAT_CLEAR:
            return Clearchat.from_irc(IrcMessage(tags, "tmi.twitch.tv", "CLEARCHAT", [channel]))
        if subscription_type == CHAT_CLEAR_USER:
            tags["target-user-id"] = _str(event.get("target_user_id"))
            target = _str(event.get("target_user_login")).lower()
            line = IrcMessage(tags, "tmi.twitch.tv", "CLEARCHAT", [channel, target])
            return Clearchat.from_irc(line)
        if subscription_type == CHAT_MESSAGE_DELETE:
            target_id = _str(event.get("message_id"))
            tags["login"] = _str(event.get("target_user_login")).lower()
            tags["target-msg-id"] = target_id
            text = self._texts.get(target_id, "")
            return Clearmsg.from_irc(IrcMessage(tags, "tmi.twitch.tv", "CLEARMSG", [channel, text]))
        if subscription_type == CHAT_SETTINGS:
            tags.update(_roomstate_tags(event))
            return Roomstate.from_irc(IrcMessage(tags, "tmi.twitch.tv", "ROOMSTATE", [channel]))
        raise UnknownEvent(f"unhandled EventSub type {subscription_type!r}")

    def _privmsg(self, event: Event, tags: dict[str, str], channel: str) -> Privmsg:
        message = event.get("message") or {}
        text = _str(message.get("text"))
        login = _str(event.get("chatter_user_login")).lower()
        tags.update(_chatter_tags(event, login))
        message_id = _str(event.get("message_id"))
        tags["id"] = message_id
        tags["emotes"] = _emotes(message.get("fragments") or [])
        tags["first-msg"] = "0"
        tags["returning-chatter"] = "0"
        cheer = event.get("cheer")
        if cheer and cheer.get("bits") is not None:
            tags["bits"] = _str(cheer.get("bits"))
        kind = MESSAGE_KINDS.get(_str(event.get("message_type")))
        if kind:
            tags["msg-id"] = kind
        reward = _str(event.get("channel_points_custom_reward_id"))
        if reward:
            tags["custom-reward-id"] = reward
        reply = event.get("reply")
        if reply:
            tags["reply-parent-msg-id"] = _str(reply.get("parent_message_id"))
            tags["reply-parent-user-id"] = _str(reply.get("parent_user_id"))
            tags["reply-parent-user-login"] = _str(reply.get("parent_user_login"))
            tags["reply-parent-display-name"] = _str(reply.get("parent_user_name"))
            tags["reply-parent-msg-body"] = _str(reply.get("parent_message_body"))
            tags["reply-thread-parent-msg-id"] = _str(reply.get("thread_message_id"))
            tags["reply-thread-parent-user-login"] = _str(reply.get("thread_user_login"))
        source_room = _str(event.get("source_broadcaster_user_id"))
        if source_room:
            tags["source-room-id"] = source_room
            tags["source-id"] = _str(event.get("source_message_id"))
            tags["source-badges"] = _badges(event.get("source_badges"))
            tags["source-badge-info"] = _badge_info(event.get("source_badges"))
        if message_id:
            self._remember_text(message_id, text)
        prefix = f"{login}!{login}@{login}.tmi.twitch.tv"
        return Privmsg.from_irc(IrcMessage(tags, prefix, "PRIVMSG", [channel, text]))

    def _remember_text(self, message_id: str, text: str) -> None:
        self._texts[message_id] = text
        if len(self._texts) > self._remember:
            self._texts.popitem(last=False)


def _usernotice(event: Event, tags: dict[str, str], channel: str) -> Usernotice:
    message = event.get("message") or {}
    if event.get("chatter_is_anonymous"):
        login = ANONYMOUS["login"]
        tags.update({"login": login, "display-name": ANONYMOUS["display-name"]})
        tags.update({"user-id": ANONYMOUS["id"], "badges": "", "badge-info": "", "color": ""})
        tags.update({"mod": "0", "subscriber": "0"})
    else:
        login = _str(event.get("chatter_user_login")).lower()
        tags.update(_chatter_tags(event, login))
        tags["login"] = login
    tags["id"] = _str(event.get("message_id"))
    tags["system-msg"] = _str(event.get("system_message"))
    tags["emotes"] = _emotes(message.get("fragments") or [])
    notice_type = _str(event.get("notice_type"))
    tags["msg-id"] = NOTICE_TYPES.get(notice_type, notice_type)
    for key, value in _notice_params(notice_type, event.get(notice_type)).items():
        tags[f"msg-param-{key}"] = value
    text = _str(message.get("text"))
    params = [channel, text] if text else [channel]
    return Usernotice.from_irc(IrcMessage(tags, "tmi.twitch.tv", "USERNOTICE", params))


def _notice_params(notice_type: str, details: Any) -> dict[str, str]:
    if not isinstance(details, dict):
        return {}
    out: dict[str, str] = {}
    renamed = dict(NOTICE_PARAMS.get(notice_type, ()))
    for field, value in details.items():
        if value is None or isinstance(value, dict | list) or field in _PLAN_FIELDS:
            continue
        out[renamed.get(field, field.replace("_", "-"))] = _param(value)
    tier = details.get("sub_tier")
    if tier is not None:
        out["sub-plan"] = "Prime" if details.get("is_prime") else _str(tier)
    return out


_PLAN_FIELDS = frozenset({"sub_tier", "is_prime"})  # folded into IRC's sub-plan


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"  # IRC msg-param booleans are true/false
    return str(value)


def _chatter_tags(event: Event, login: str) -> dict[str, str]:
    badges = event.get("badges") or []
    names = {_str(badge.get("set_id")) for badge in badges if isinstance(badge, dict)}
    return {
        "user-id": _str(event.get("chatter_user_id")),
        "display-name": _str(event.get("chatter_user_name")) or login,
        "color": _str(event.get("color")),
        "badges": _badges(badges),
        "badge-info": _badge_info(badges),
        # IRC's mod/subscriber tags follow the badges (a founder counts as a subscriber).
        "mod": "1" if "moderator" in names else "0",
        "subscriber": "1" if names & {"subscriber", "founder"} else "0",
        "vip": "1" if "vip" in names else "0",
    }


def _badges(badges: Any) -> str:
    if not isinstance(badges, list):
        return ""
    return ",".join(
        f"{_str(b.get('set_id'))}/{_str(b.get('id'))}" for b in badges if isinstance(b, dict)
    )


def _badge_info(badges: Any) -> str:
    if not isinstance(badges, list):
        return ""
    return ",".join(
        f"{_str(b.get('set_id'))}/{_str(b.get('info'))}"
        for b in badges
        if isinstance(b, dict) and b.get("info")
    )


def _emotes(fragments: list[Any]) -> str:
    """Emote fragments -> IRC's ``id:start-end,start-end/id:...`` in code points, end inclusive."""
    spans: dict[str, list[str]] = {}
    position = 0
    for fragment in fragments:
        if not isinstance(fragment, dict):
            continue
        text = _str(fragment.get("text"))
        emote = fragment.get("emote")
        if fragment.get("type") == "emote" and isinstance(emote, dict) and text:
            spans.setdefault(_str(emote.get("id")), []).append(
                f"{position}-{position + len(text) - 1}"
            )
        position += len(text)
    return "/".join(f"{emote_id}:{','.join(ranges)}" for emote_id, ranges in spans.items())


def _roomstate_tags(event: Event) -> dict[str, str]:
    followers = "-1"
    if event.get("follower_mode"):
        followers = _str(event.get("follower_mode_duration_minutes") or 0)
    slow = _str(event.get("slow_mode_wait_time_seconds") or 0) if event.get("slow_mode") else "0"
    return {
        "emote-only": _flag(event.get("emote_mode")),
        "followers-only": followers,
        "r9k": _flag(event.get("unique_chat_mode")),
        "slow": slow,
        "subs-only": _flag(event.get("subscriber_mode")),
    }


def _flag(value: Any) -> str:
    return "1" if value else "0"


def _str(value: Any) -> str:
    return "" if value is None else str(value)
