"""Every real Twitch line in tests/fixtures/twitch_irc_vectors.jsonl, against what peers assert.

The vectors come from go-twitch-irc, tmi.js and twurple test suites (see the fixture's
README in docs/). Where a peer departs from the IRCv3 spec (``peer_quirk``) or from this
project's documented choices, ``OVERRIDES`` states what this project asserts instead.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.protocol import IrcParseError, parse_line
from ingress_egress.twitch.messages import (
    Clearchat,
    Clearmsg,
    Notice,
    Ping,
    Pong,
    Privmsg,
    Roomstate,
    Usernotice,
    Userstate,
    Whisper,
    from_irc,
)
from ingress_egress.twitch.messages.common import find_cheers, parse_emotes
from tests.support.schemas import validate_envelope

VECTORS = [
    json.loads(line)
    for line in (Path(__file__).parent / "fixtures" / "twitch_irc_vectors.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
]

# Where this project deliberately differs from the peer's assertion (each is explained).
OVERRIDES: dict[str, dict[str, Any]] = {
    # IRCv3 message-tags unescaping, not go-twitch-irc's order-dependent replace + trim.
    "irc_tag_escape_torture": {"tags": {"foo": "\\\\;\\s \r\n"}},
    "irc_tag_escaped_backslash_then_n": {"tags": {"tag1": "value\\ntest"}},
    "irc_tag_unknown_escape": {"tags": {"tag1": "value1"}},
    # PING/PONG keep their whole last parameter: it is echoed back verbatim.
    "ping_trailing_with_spaces_first_word_only": {
        "text": "message anything after the first space should be ignored"
    },
    "pong_single_param": {"text": "tmi.twitch.tv"},
    # Whispers have no CTCP ACTION form (twitch-irc-rs): the text is kept as sent.
    "whisper_slash_me_action": {"is_action": False, "text": "/me tests whisper action"},
    # Consecutive spaces separate parameters once (as irctokens): no empty middle param.
    "irc_empty_middle_param_double_space": {
        "params": ["#momo", "Erroneous Nickname: Illegal characters"]
    },
    # A permanent ban has no duration (null, as twitch-irc-rs), not go's 0.
    "clearchat_ban_duration_zero": {"ban_duration": None},
    # "\\n" in a tag value is a line feed (IRCv3); tmi.js and go drop it.
    "usernotice_raid_system_msg_with_escaped_newline": {
        "system_msg": "538 raiders from FletcherCodes have joined\n!"
    },
    "usernotice_raid_tmi": {"system_msg": "6 raiders from raider have joined\n!"},
    # Tag-less bare CTCP: the action flag is set and the text is empty, like go.
    "privmsg_bare_ctcp_action_no_text": {"is_action": True},
}

BUILDER = EnvelopeBuilder(clock=lambda: 1_700_000_000.0)


def _expect(row: dict[str, Any]) -> dict[str, Any]:
    expect = {k: v for k, v in row["expect"].items() if k not in ("peer_event", "note")}
    expect.update(OVERRIDES.get(row["case"], {}))
    return expect


def _badges(pairs: Any) -> list[dict[str, str]]:
    return [{"name": name, "version": version} for name, version in pairs]


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["case"] for row in rows]


LINES = [row for row in VECTORS if row["raw_kind"] == "line"]
OTHERS = [row for row in VECTORS if row["raw_kind"] != "line"]


def test_fixture_is_complete() -> None:
    assert len(VECTORS) == 86
    assert len({row["case"] for row in VECTORS}) == 86
    assert set(OVERRIDES) <= {row["case"] for row in VECTORS}


@pytest.mark.parametrize("row", LINES, ids=_ids(LINES))
def test_line(row: dict[str, Any]) -> None:
    expect = _expect(row)
    if expect.get("error"):
        with pytest.raises(IrcParseError) as caught:
            parse_line(row["raw"])
        assert expect["error_kind"] in caught.value.reason
        if "tags" in expect:
            assert caught.value.tags == expect["tags"]
        return
    msg = parse_line(row["raw"])
    _check_irc(msg, expect)
    typed = from_irc(msg)
    _check_typed(typed, expect)
    envelope = BUILDER.build(typed)
    if envelope is not None:
        validate_envelope(envelope)
        _check_envelope(typed, envelope, expect)


def _check_irc(msg: Any, expect: dict[str, Any]) -> None:
    if "command" in expect:
        assert msg.command == expect["command"]
    if "tags" in expect:
        assert msg.tags == expect["tags"]
    if "params" in expect:
        assert msg.params == expect["params"]
    if "prefix" in expect:
        for part in ("nick", "user", "host"):
            if part in expect["prefix"]:
                assert (getattr(msg, part) or "") == expect["prefix"][part]


def _check_typed(typed: Any, expect: dict[str, Any]) -> None:
    chatter = getattr(typed, "chatter", None)
    if expect.get("color", "") is None:  # tmi.js says null where this project says ""
        expect = {**expect, "color": ""}
    simple = {
        "channel": lambda: typed.channel,
        "room_id": lambda: typed.room_id,
        "login": lambda: chatter.login if chatter else _login(typed),
        "display_name": lambda: chatter.display_name,
        "user_id": lambda: chatter.user_id,
        "color": lambda: chatter.color,
        "message_id": lambda: typed.message_id,
        "is_action": lambda: getattr(typed, "is_action", False),
        "first_msg": lambda: typed.first_message,
        "msg_id": lambda: _msg_id(typed),
        "system_msg": lambda: typed.system_message,
        "ban_duration": lambda: typed.duration_seconds,
        "target_user_id": lambda: typed.target_user_id,
        "target_msg_id": lambda: typed.target_message_id,
        "tmi_sent_ts": lambda: typed.sent_at_ms,
        "emote_sets": lambda: typed.emote_sets,
        "custom_reward_id": lambda: typed.custom_reward_id,
        "recipient": lambda: typed.recipient,
        "is_mod": lambda: typed.is_mod,
        "is_vip": lambda: chatter.has_badge("vip"),
        "is_broadcaster": lambda: chatter.has_badge("broadcaster"),
        "reply_parent_msg_id": lambda: typed.reply.message_id,
        "reply_parent_user_id": lambda: typed.reply.user_id,
        "reply_parent_user_login": lambda: typed.reply.user_login,
        "reply_parent_display_name": lambda: typed.reply.display_name,
        "reply_parent_msg_body": lambda: typed.reply.text,
    }
    for key, read in simple.items():
        if key in expect:
            assert read() == expect[key], key
    if "target_login" in expect:
        assert typed.target_login == expect["target_login"]
    if "text" in expect:
        assert _text(typed) == expect["text"]
    if "badges" in expect:
        assert _badges(chatter.badges) == expect["badges"]
    if "badge_info" in expect:
        assert _badges(chatter.badge_info) == expect["badge_info"]
    if "bits" in expect:
        assert (typed.bits or 0) == expect["bits"]
    if "msg_params" in expect:
        assert typed.params == {
            key.removeprefix("msg-param-"): value for key, value in expect["msg_params"].items()
        }
    if "emotes" in expect:
        got = [(e.id, e.start, e.end) for e in typed.emotes]
        assert got == [(e["id"], e["start"], e["end"]) for e in expect["emotes"]]
    if "emotes_grouped" in expect:
        _check_grouped(typed, expect["emotes_grouped"])
    if "emotes_count" in expect:
        assert len(typed.emotes) == expect["emotes_count"]
    if "source" in expect:
        assert typed.shared_source.message_id == expect["source"]["id"]
        assert typed.shared_source.room_id == expect["source"]["room_id"]
        assert typed.shared_source.badges == ",".join(expect["source"]["badges"])
    if "event" in expect:
        _check_event(typed, expect["event"])
    if isinstance(typed, Roomstate):
        _check_roomstate(typed, expect)


def _login(typed: Any) -> str:
    return typed.target_login if isinstance(typed, Clearchat | Clearmsg) else typed.login


def _msg_id(typed: Any) -> str:
    if isinstance(typed, Notice):
        return typed.notice_id
    if isinstance(typed, Privmsg):
        return typed.message_kind
    return typed.notice_type


def _text(typed: Any) -> str:
    if isinstance(typed, Ping | Pong):
        return typed.argument
    if isinstance(typed, Roomstate | Userstate):
        return ""
    if isinstance(typed, Clearchat):
        return ""
    if isinstance(typed, Privmsg | Usernotice | Clearmsg | Notice | Whisper):
        return typed.text
    return typed.irc.trailing


def _check_grouped(typed: Any, groups: list[dict[str, Any]]) -> None:
    from ingress_egress.twitch.messages.common import emotes_within

    names: dict[str, list[str]] = {}
    for emote, name in emotes_within(typed.text, typed.emotes):
        names.setdefault(emote.id, []).append(name)
    assert list(names) == [group["id"] for group in groups]
    for group in groups:
        assert set(names[group["id"]]) == {group["name"]}
        assert len(names[group["id"]]) == group.get("count", 1)


def _check_event(typed: Usernotice, event: dict[str, Any]) -> None:
    kinds = {"sub_or_resub": ("sub", "resub")}
    assert typed.notice_type in kinds.get(event["kind"], (event["kind"],))
    params = typed.params
    checks = {
        "is_resub": typed.notice_type == "resub",
        "viewer_count": int(params.get("viewerCount", "-1")),
        "cumulative_months": int(params.get("cumulative-months", "-1")),
        "streak_months": int(params.get("streak-months", "-1")),
        "sub_plan": params.get("sub-plan"),
        "sub_plan_name": params.get("sub-plan-name"),
        "gifter_login": params.get("sender-login"),
        "gifter_name": params.get("sender-name"),
    }
    for key, value in event.items():
        if key != "kind":
            assert checks[key] == value, key


def _check_roomstate(typed: Roomstate, expect: dict[str, Any]) -> None:
    names = {
        "emote_only": "emoteOnly",
        "followers_only": "followersOnlyMinutes",
        "r9k": "uniqueChat",
        "slow": "slowSeconds",
        "subs_only": "subscribersOnly",
        "rituals": "rituals",
    }
    for key, setting in names.items():
        if key in expect:
            assert typed.settings[setting] == expect[key], key


def _check_envelope(typed: Any, envelope: dict[str, Any], expect: dict[str, Any]) -> None:
    payload = envelope["payload"]
    assert payload["raw"]["tags"] == typed.irc.tags
    if "channel" in expect:
        assert envelope["source"]["channel"] == expect["channel"]
    if "room_id" in expect:
        assert envelope["source"]["channelId"] == (expect["room_id"] or None)
    if isinstance(typed, Privmsg | Usernotice):
        if "text" in expect:
            assert payload["text"] == expect["text"]
        if "badges" in expect:
            assert payload["badges"] == [b["name"] for b in expect["badges"]]
        if "login" in expect:
            assert envelope["user"]["name"] == expect["login"]
        if "display_name" in expect:
            assert envelope["user"]["displayName"] == expect["display_name"]
        for emote in payload["emotes"]:
            # Every published emote names exactly the code points its range covers.
            assert payload["text"][emote["start"] : emote["end"] + 1] == emote["name"]
    if isinstance(typed, Privmsg) and "is_action" in expect:
        assert payload["isAction"] == expect["is_action"]


@pytest.mark.parametrize("row", OTHERS, ids=_ids(OTHERS))
def test_fragment(row: dict[str, Any]) -> None:
    expect = row["expect"]
    if row["raw_kind"] == "emotes_tag":
        ranges = parse_emotes(row["raw"])
        grouped: dict[str, list[str]] = {}
        for emote in ranges:
            grouped.setdefault(emote.id, []).append(f"{emote.start}-{emote.end}")
        assert grouped == expect["emote_ranges"]
        return
    text = row["raw"]
    ranges = parse_emotes(row["input_emotes_tag"])
    got = [{"id": e.id, "start": e.start, "end": e.end, "code": text[e.start : e.end + 1]}
           for e in ranges]  # fmt: skip
    assert got == expect["emotes"]
    if "cheers" in expect:
        cheers = [
            {"name": c.name, "amount": c.amount, "position": c.position, "length": c.length}
            for c in find_cheers(text)
        ]
        assert cheers == expect["cheers"]


def test_every_command_in_the_fixture_is_exercised() -> None:
    commands = Counter(row["expect"].get("command") for row in LINES)
    for command in ("PRIVMSG", "USERNOTICE", "CLEARCHAT", "CLEARMSG", "ROOMSTATE", "WHISPER"):
        assert commands[command] > 0
