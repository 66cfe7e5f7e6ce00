"""EventSub chat events in Twitch's documented shapes (dev.twitch.tv/docs/eventsub), built
for the mock server; each has the IRC line Twitch sends for the same thing next to it where a
test compares the two transports."""

from __future__ import annotations

from typing import Any

BROADCASTER = {"broadcaster_user_id": "22484632", "broadcaster_user_login": "forsen",
               "broadcaster_user_name": "forsen"}  # fmt: skip


def broadcaster(user_id: str, login: str) -> dict[str, str]:
    return {
        "broadcaster_user_id": user_id,
        "broadcaster_user_login": login,
        "broadcaster_user_name": login.title(),
    }


def chat_message(
    room: dict[str, str],
    message_id: str,
    fragments: list[dict[str, Any]],
    *,
    chatter: tuple[str, str, str] = ("123", "viewer", "Viewer"),
    color: str = "#1E90FF",
    badges: list[dict[str, str]] | None = None,
    cheer: int | None = None,
    reply: dict[str, str] | None = None,
    message_type: str = "text",
) -> dict[str, Any]:
    user_id, login, name = chatter
    return {
        **room,
        "chatter_user_id": user_id,
        "chatter_user_login": login,
        "chatter_user_name": name,
        "message_id": message_id,
        "message": {"text": "".join(f["text"] for f in fragments), "fragments": fragments},
        "color": color,
        "badges": badges or [],
        "message_type": message_type,
        "cheer": None if cheer is None else {"bits": cheer},
        "reply": reply,
        "channel_points_custom_reward_id": None,
        "channel_points_animation_id": None,
        "source_broadcaster_user_id": None,
        "source_broadcaster_user_login": None,
        "source_broadcaster_user_name": None,
        "source_message_id": None,
        "source_badges": None,
        "is_source_only": None,
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value, "cheermote": None, "emote": None, "mention": None}


def emote(name: str, emote_id: str) -> dict[str, Any]:
    return {
        "type": "emote",
        "text": name,
        "cheermote": None,
        "emote": {"id": emote_id, "emote_set_id": "0", "owner_id": "0", "format": ["static"]},
        "mention": None,
    }


def cheermote(prefix: str, bits: int) -> dict[str, Any]:
    return {
        "type": "cheermote",
        "text": f"{prefix}{bits}",
        "cheermote": {"prefix": prefix.lower(), "bits": bits, "tier": 100},
        "emote": None,
        "mention": None,
    }


def mention(login: str, user_id: str) -> dict[str, Any]:
    return {
        "type": "mention",
        "text": f"@{login}",
        "cheermote": None,
        "emote": None,
        "mention": {"user_id": user_id, "user_name": login, "user_login": login},
    }


def badge(set_id: str, version: str, info: str = "") -> dict[str, str]:
    return {"set_id": set_id, "id": version, "info": info}


def resub(room: dict[str, str], message_id: str, months: int) -> dict[str, Any]:
    return {
        **room,
        "chatter_user_id": "321",
        "chatter_user_login": "loyal",
        "chatter_user_name": "Loyal",
        "chatter_is_anonymous": False,
        "color": "#00FF7F",
        "badges": [badge("subscriber", "12", str(months))],
        "system_message": f"Loyal subscribed at Tier 1. They've subscribed for {months} months!",
        "message_id": message_id,
        "message": {"text": "still here", "fragments": [text("still here")]},
        "notice_type": "resub",
        "sub": None,
        "resub": {
            "cumulative_months": months,
            "duration_months": 1,
            "streak_months": None,
            "sub_tier": "1000",
            "is_prime": False,
            "is_gift": False,
            "gifter_is_anonymous": None,
            "gifter_user_id": None,
            "gifter_user_name": None,
            "gifter_user_login": None,
        },
        "sub_gift": None,
        "community_sub_gift": None,
        "gift_paid_upgrade": None,
        "prime_paid_upgrade": None,
        "pay_it_forward": None,
        "raid": None,
        "unraid": None,
        "announcement": None,
        "bits_badge_tier": None,
        "charity_donation": None,
    }


def clear(room: dict[str, str]) -> dict[str, Any]:
    return dict(room)


def clear_user(room: dict[str, str], user_id: str, login: str) -> dict[str, Any]:
    return {
        **room,
        "target_user_id": user_id,
        "target_user_login": login,
        "target_user_name": login.title(),
    }


def message_delete(room: dict[str, str], message_id: str, login: str) -> dict[str, Any]:
    return {
        **room,
        "target_user_id": "123",
        "target_user_login": login,
        "target_user_name": login.title(),
        "message_id": message_id,
    }


def chat_settings(room: dict[str, str], *, slow: int = 0, followers: int | None = None) -> dict:
    return {
        **room,
        "emote_mode": False,
        "follower_mode": followers is not None,
        "follower_mode_duration_minutes": followers,
        "slow_mode": bool(slow),
        "slow_mode_wait_time_seconds": slow or None,
        "subscriber_mode": True,
        "unique_chat_mode": False,
    }
