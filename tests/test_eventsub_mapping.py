"""EventSub notification types -> IRC USERNOTICE msg-ids and msg-params, anonymous gifters."""

from __future__ import annotations

from ingress_egress.sources.eventsub.mapping import EventMapper
from ingress_egress.twitch.messages import Usernotice
from tests.support import eventsub_events as ev

ROOM = ev.broadcaster("501", "alpha")


def notification(notice_type: str, details: dict, **extra: object) -> Usernotice:
    event = ev.resub(ROOM, "n-1", 1) | {"notice_type": notice_type, "resub": None}
    event[notice_type] = details
    event.update(extra)
    message = EventMapper().to_message("channel.chat.notification", event, 1_700_000_000_000)
    assert isinstance(message, Usernotice)
    return message


def test_a_gift_from_an_anonymous_gifter() -> None:
    details = {
        "duration_months": 1,
        "cumulative_total": None,
        "recipient_user_id": "9",
        "recipient_user_name": "Lucky",
        "recipient_user_login": "lucky",
        "sub_tier": "2000",
        "community_gift_id": None,
    }
    notice = notification("sub_gift", details, chatter_is_anonymous=True)
    assert notice.notice_type == "subgift"
    assert notice.chatter.login == "ananonymousgifter"
    assert notice.chatter.user_id == "274598607"
    assert notice.params == {
        "gift-months": "1",
        "recipient-id": "9",
        "recipient-display-name": "Lucky",
        "recipient-user-name": "lucky",
        "sub-plan": "2000",
    }


def test_a_raid_and_a_prime_sub() -> None:
    raid = notification(
        "raid",
        {"user_id": "7", "user_name": "Raider", "user_login": "raider", "viewer_count": 42,
         "profile_image_url": "https://x/p.png"},
    )  # fmt: skip
    assert raid.notice_type == "raid"
    assert raid.params["login"] == "raider" and raid.params["viewerCount"] == "42"
    sub = notification("sub", {"sub_tier": "1000", "is_prime": True, "duration_months": 1})
    assert sub.params["sub-plan"] == "Prime"
    assert sub.params["multimonth-duration"] == "1"


def test_an_unknown_notice_type_is_kept_as_sent() -> None:
    notice = notification("shared_chat_something_new", {"detail": "x"})
    assert notice.notice_type == "shared_chat_something_new"
    assert notice.params == {"detail": "x"}
    assert notice.text == "still here"
