"""The same chat event read over IRC and over EventSub: the two envelopes agree on every
contract field but the ones listed in ``TRANSPORT_FIELDS`` (docs/envelope.md, "EventSub")."""

from __future__ import annotations

from typing import Any

import pytest

from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.protocol import parse_line
from ingress_egress.sources.eventsub.mapping import EventMapper, timestamp_ms
from ingress_egress.twitch.messages import from_irc
from tests.support import eventsub_events as ev
from tests.support.schemas import validate_envelope

# Fields that differ by construction: which transport, what it sent raw, a fresh trace id.
TRANSPORT_FIELDS = {"traceId", "payload.transport", "payload.raw"}
# On notifications, IRC's msg-param-* and EventSub's per-type fields are different sets: the
# ones both carry must agree (checked below), the rest differ.
NOTIFICATION_FIELDS = {"payload.params"}

SENT = "2026-11-22T00:43:48.123456789Z"
TS = timestamp_ms(SENT)
RECEIVED = 1_795_300_000.25
ALPHA = ev.broadcaster("501", "alpha")


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return out
    return {prefix: value}


def irc_envelope(line: str) -> dict[str, Any]:
    envelope = EnvelopeBuilder(transport="irc").build(from_irc(parse_line(line)), RECEIVED)
    assert envelope is not None
    return envelope


def eventsub_envelope(mapper: EventMapper, kind: str, event: dict[str, Any]) -> dict[str, Any]:
    message = mapper.to_message(kind, event, TS)
    envelope = EnvelopeBuilder(transport="eventsub").build(message, RECEIVED)
    assert envelope is not None
    return envelope


def assert_agree(irc: dict[str, Any], eventsub: dict[str, Any], skip: set[str]) -> None:
    validate_envelope(irc)
    validate_envelope(eventsub)
    assert irc["payload"]["transport"] == "irc"
    assert eventsub["payload"]["transport"] == "eventsub"

    def kept(key: str) -> bool:
        return not any(key == s or key.startswith(s + ".") for s in skip)

    left = {k: v for k, v in flatten(irc).items() if kept(k)}
    right = {k: v for k, v in flatten(eventsub).items() if kept(k)}
    assert left == right
    assert len(left) > 10  # the comparison covered the contract, not an empty dict


CHAT_LINE = (
    f"@badge-info=subscriber/14;badges=subscriber/12,moderator/1;bits=100;color=#1E90FF;"
    f"display-name=Viewer;emotes=25:3-7;first-msg=0;flags=;id=m-1;mod=1;returning-chatter=0;"
    f"room-id=501;subscriber=1;tmi-sent-ts={TS};turbo=0;user-id=123;user-type=mod;vip=0 "
    f":viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #alpha :hi Kappa Cheer100"
)


def test_a_chat_message_agrees() -> None:
    fragments = [ev.text("hi "), ev.emote("Kappa", "25"), ev.text(" "), ev.cheermote("Cheer", 100)]
    badges = [ev.badge("subscriber", "12", "14"), ev.badge("moderator", "1")]
    event = ev.chat_message(ALPHA, "m-1", fragments, badges=badges, cheer=100)
    irc = irc_envelope(CHAT_LINE)
    eventsub = eventsub_envelope(EventMapper(), "channel.chat.message", event)
    assert_agree(irc, eventsub, TRANSPORT_FIELDS)
    assert eventsub["id"] == irc["id"]  # the same stable id: consumers de-duplicate across both
    assert eventsub["payload"]["emotes"] == [{"id": "25", "start": 3, "end": 7, "name": "Kappa"}]
    assert eventsub["payload"]["bits"] == 100


def test_a_reply_with_an_emoji_before_an_emote_agrees() -> None:
    # Code points, not UTF-16 units: the emoji is one position on both transports.
    fragments = [ev.mention("someone", "77"), ev.text(" 😀 "), ev.emote("Kappa", "25")]
    reply = {
        "parent_message_id": "p-1",
        "parent_message_body": "hello all",
        "parent_user_id": "77",
        "parent_user_name": "Someone",
        "parent_user_login": "someone",
        "thread_message_id": "p-0",
        "thread_user_id": "78",
        "thread_user_name": "Starter",
        "thread_user_login": "starter",
    }
    event = ev.chat_message(ALPHA, "m-2", fragments, reply=reply, color="")
    line = (
        f"@badge-info=;badges=;color=;display-name=Viewer;emotes=25:11-15;first-msg=0;flags=;"
        f"id=m-2;mod=0;reply-parent-display-name=Someone;reply-parent-msg-body=hello\\sall;"
        f"reply-parent-msg-id=p-1;reply-parent-user-id=77;reply-parent-user-login=someone;"
        f"reply-thread-parent-msg-id=p-0;reply-thread-parent-user-login=starter;"
        f"returning-chatter=0;room-id=501;subscriber=0;tmi-sent-ts={TS};turbo=0;user-id=123;"
        f"user-type= :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #alpha :@someone 😀 Kappa"
    )
    eventsub = eventsub_envelope(EventMapper(), "channel.chat.message", event)
    assert_agree(irc_envelope(line), eventsub, TRANSPORT_FIELDS)
    assert eventsub["payload"]["reply"]["parentMessageId"] == "p-1"


def test_an_action_agrees() -> None:
    # EventSub keeps IRC's /me wrapper in message.text but not in the fragments.
    event = ev.chat_message(ALPHA, "m-3", [ev.text("waves "), ev.emote("Kappa", "25")])
    event["message"]["text"] = "\x01ACTION waves Kappa\x01"
    line = (
        f"@badge-info=;badges=;color=#1E90FF;display-name=Viewer;emotes=25:6-10;first-msg=0;"
        f"id=m-3;mod=0;returning-chatter=0;room-id=501;subscriber=0;tmi-sent-ts={TS};"
        f"user-id=123 :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #alpha "
        f":\x01ACTION waves Kappa\x01"
    )
    eventsub = eventsub_envelope(EventMapper(), "channel.chat.message", event)
    assert_agree(irc_envelope(line), eventsub, TRANSPORT_FIELDS)
    assert eventsub["payload"]["isAction"] is True
    assert eventsub["payload"]["emotes"][0]["name"] == "Kappa"


def test_a_resub_agrees() -> None:
    event = ev.resub(ev.broadcaster("502", "beta"), "n-1", 14)
    system = "Loyal subscribed at Tier 1. They've subscribed for 14 months!"
    line = (
        f"@badge-info=subscriber/14;badges=subscriber/12;color=#00FF7F;display-name=Loyal;"
        f"emotes=;flags=;id=n-1;login=loyal;mod=0;msg-id=resub;msg-param-cumulative-months=14;"
        f"msg-param-months=0;msg-param-multimonth-duration=1;msg-param-multimonth-tenure=0;"
        f"msg-param-should-share-streak=0;msg-param-sub-plan-name=Channel\\sSubscription;"
        f"msg-param-sub-plan=1000;msg-param-was-gifted=false;room-id=502;subscriber=1;"
        f"system-msg={system.replace(' ', chr(92) + 's')};tmi-sent-ts={TS};user-id=321;"
        f"user-type= :tmi.twitch.tv USERNOTICE #beta :still here"
    )
    irc = irc_envelope(line)
    eventsub = eventsub_envelope(EventMapper(), "channel.chat.notification", event)
    assert_agree(irc, eventsub, TRANSPORT_FIELDS | NOTIFICATION_FIELDS)
    irc_params, es_params = irc["payload"]["params"], eventsub["payload"]["params"]
    shared = set(irc_params) & set(es_params)
    assert shared >= {"cumulative-months", "multimonth-duration", "sub-plan", "was-gifted"}
    assert {k: irc_params[k] for k in shared} == {k: es_params[k] for k in shared}


@pytest.mark.parametrize(
    ("kind", "event", "line"),
    [
        (
            "channel.chat.clear_user_messages",
            ev.clear_user(ALPHA, "123", "viewer"),
            f"@room-id=501;target-user-id=123;tmi-sent-ts={TS} "
            ":tmi.twitch.tv CLEARCHAT #alpha :viewer",
        ),
        (
            "channel.chat.clear",
            ev.clear(ALPHA),
            f"@room-id=501;tmi-sent-ts={TS} :tmi.twitch.tv CLEARCHAT #alpha",
        ),
        (
            "channel.chat_settings.update",
            ev.chat_settings(ALPHA, slow=30, followers=10),
            "@emote-only=0;followers-only=10;r9k=0;room-id=501;slow=30;subs-only=1 "
            ":tmi.twitch.tv ROOMSTATE #alpha",
        ),
    ],
)
def test_moderation_and_settings_agree(kind: str, event: dict, line: str) -> None:
    # A ROOMSTATE has no Twitch id: its id is derived from tmi-sent-ts, which only EventSub
    # carries (the notification's timestamp), else from the receipt window: they differ.
    random_id = {"id", "correlationId"} if kind.startswith("channel.chat_settings") else set()
    skip = TRANSPORT_FIELDS | random_id
    assert_agree(irc_envelope(line), eventsub_envelope(EventMapper(), kind, event), skip)


def test_a_deleted_message_agrees_once_its_text_was_seen() -> None:
    mapper = EventMapper()
    eventsub_envelope(
        mapper, "channel.chat.message", ev.chat_message(ALPHA, "m-9", [ev.text("oops")])
    )
    deleted = eventsub_envelope(
        mapper, "channel.chat.message_delete", ev.message_delete(ALPHA, "m-9", "viewer")
    )
    line = (
        f"@login=viewer;room-id=501;target-msg-id=m-9;tmi-sent-ts={TS} "
        ":tmi.twitch.tv CLEARMSG #alpha :oops"
    )
    assert_agree(irc_envelope(line), deleted, TRANSPORT_FIELDS)
    # A message deleted before this process saw it: the event carries no text.
    unseen = eventsub_envelope(
        EventMapper(), "channel.chat.message_delete", ev.message_delete(ALPHA, "m-9", "viewer")
    )
    assert unseen["payload"]["text"] == ""


def test_raw_tags_hold_the_irc_equivalent_tags() -> None:
    event = ev.chat_message(ALPHA, "m-1", [ev.text("hi")], badges=[ev.badge("vip", "1")])
    envelope = eventsub_envelope(EventMapper(), "channel.chat.message", event)
    tags = envelope["payload"]["raw"]["tags"]
    assert tags["id"] == "m-1" and tags["room-id"] == "501" and tags["badges"] == "vip/1"
    assert tags["tmi-sent-ts"] == str(TS)
    assert envelope["payload"]["isVip"] is True
