"""IRC lines for the differential tests of the C fast path against its Python reference:
the fixture's real lines, hypothesis strategies (any text, Twitch-shaped lines, PRIVMSGs with
the tags the envelope reads), twin builders drawing the same ids, and a comparable form of
what either path returns."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import strategies as st

from ingress_egress.protocol import escape_tag_value

FIXTURE = Path(__file__).parent.parent / "fixtures" / "twitch_irc_vectors.jsonl"
VECTORS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
FIXTURE_LINES = [row["raw"] for row in VECTORS if row["raw_kind"] == "line"]
RECEIVED = 1_700_000_000.123
MONOTONIC = 4242.5


# Any code point, lone surrogates and NUL included.
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=())
ODD_TEXT = st.text(ANY_CHAR, max_size=120)
TWITCH_KEYS = [
    "badge-info", "badges", "bits", "client-nonce", "color", "display-name", "emotes",
    "first-msg", "flags", "id", "mod", "returning-chatter", "room-id", "subscriber",
    "tmi-sent-ts", "turbo", "user-id", "user-type", "vip", "msg-id", "custom-reward-id",
    "reply-parent-msg-id", "reply-parent-user-id", "reply-parent-user-login",
    "reply-parent-display-name", "reply-parent-msg-body", "reply-thread-parent-msg-id",
    "reply-thread-parent-user-login", "source-room-id", "source-id", "source-badges",
    "source-badge-info",
]  # fmt: skip
TAG_KEY = st.one_of(
    st.sampled_from(TWITCH_KEYS), st.text(st.sampled_from("ab-=;\\ é🎉x"), max_size=6)
)
TAG_PIECE = st.sampled_from(
    ["\\", "\\s", "\\:", "\\\\", "\\n", "\\r", "\\x", "=", ";", "é", "🎉", "\ud800", "\x00"]
)
NUMBERISH = st.text(st.sampled_from("0123456789:/+-_ ٣²x"), max_size=22)
SPACEY = st.text(st.sampled_from(" \t\u3000\xa0aB"), max_size=4)
COLORISH = st.text(st.sampled_from("#0a9fFgG "), min_size=6, max_size=8)
EMOTEISH = st.text(st.sampled_from("0123456789:-,/²٣x"), max_size=24)
BADGEISH = st.text(st.sampled_from("ab/,1é"), max_size=12)
TAG_VALUE = st.one_of(
    st.sampled_from(["", "0", "1", "#1e90ff", "#1E90FF", "#12345g", "subscriber/12,vip/1"]),
    st.sampled_from(["25:0-4,6-10/1902:12-16", "25:0-4/x", "1:²-3", "1:0-" + "9" * 30]),
    st.sampled_from(["1600000000000", " 12", "+5", "1_000", "٣", "abc", "1e3", " ", "x "]),
    NUMBERISH,
    SPACEY,
    COLORISH,
    EMOTEISH,
    BADGEISH,
    st.lists(st.one_of(TAG_PIECE, st.text(ANY_CHAR, max_size=4)), max_size=5).map("".join),
)
PREFIX = st.one_of(
    st.none(),
    st.sampled_from(["tmi.twitch.tv", "nick!user@host", "a!a@a.tmi.twitch.tv", "x@y", "n!u"]),
    st.text(st.sampled_from("ab!@.é🎉 \x00"), max_size=8),
)
COMMAND = st.one_of(
    st.sampled_from(["PRIVMSG", "USERNOTICE", "CLEARCHAT", "CLEARMSG", "ROOMSTATE", "NOTICE"]),
    st.sampled_from(["USERSTATE", "WHISPER", "JOIN", "PART", "PING", "PONG", "CAP", "001"]),
    st.text(st.sampled_from("A1é\t"), max_size=3),
)
MIDDLE = st.lists(
    st.one_of(st.sampled_from(["#chan", "#Chan", "#İstanbul", "justinfan1", "*"]), ODD_TEXT),
    max_size=3,
)
TRAILING = st.one_of(
    st.none(),
    ODD_TEXT,
    st.sampled_from(["\x01ACTION waves\x01", "\x01ACTION\x01", "\x01ACTION", "\x01ACTIONx"]),
    st.sampled_from(["Kappa hi", "Cheer100 hi cheer50", "🎉 Kappa 草", " ", ":)", "a  b"]),
)
SEPARATOR = st.sampled_from([" ", "  ", "\t", " \x00"])


@st.composite
def twitch_like_lines(draw: st.DrawFn) -> str:
    parts = []
    tags = draw(st.lists(st.tuples(TAG_KEY, TAG_VALUE), max_size=12))
    if tags or draw(st.booleans()):
        raw_tags = ";".join(
            f"{key}={value if draw(st.booleans()) else escape_tag_value(value)}"
            if draw(st.integers(0, 9))
            else key
            for key, value in tags
        )
        parts.append("@" + raw_tags)
    prefix = draw(PREFIX)
    if prefix is not None:
        parts.append(":" + prefix)
    parts.append(draw(COMMAND))
    parts.extend(draw(MIDDLE))
    trailing = draw(TRAILING)
    if trailing is not None:
        parts.append(":" + trailing)
    line = draw(SEPARATOR).join(parts)
    return line + draw(st.sampled_from(["", "\r\n", "\n", "\r\r"]))


@st.composite
def privmsg_lines(draw: st.DrawFn) -> str:
    """PRIVMSG lines whose tags are the ones the typed fast path reads, with edgy values."""
    keys = draw(st.lists(st.sampled_from(TWITCH_KEYS), min_size=1, max_size=len(TWITCH_KEYS)))
    tags = ";".join(f"{key}={escape_tag_value(draw(TAG_VALUE))}" for key in keys)
    nick = draw(st.sampled_from(["a!a@a.tmi.twitch.tv", "Ünï!x@y", "NICK!N@h", "srv.tv"]))
    channel = draw(st.sampled_from(["#chan", "#Chan", "#İstanbul", "", "#"]))
    text = draw(TRAILING) or ""
    return f"@{tags} :{nick} PRIVMSG {channel} :{text}"


# Strategy: PRIVMSG lines with the tags the envelope reads, well-formed (emotes that fit
# the text, replies, bits, badges) and edgy (escapes, astral characters, controls).
TEXT_CHARS = st.one_of(
    st.sampled_from(list('abc XYZ  Kappa:)"\\/\t')),
    st.sampled_from(["🎉", "草", "é", "\u2028", "\x7f", "\x00", "\x1f", "\x08", "\U0001f600"]),
    st.characters(min_codepoint=1, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
)
TEXT = st.text(TEXT_CHARS, min_size=1, max_size=60)
VALUE = st.text(TEXT_CHARS, max_size=12)
BADGE = st.tuples(
    st.sampled_from(["vip", "broadcaster", "moderator", "subscriber", "premium", "bits", "é"]),
    st.sampled_from(["1", "0", "12", "3000", "x"]),
)


@st.composite
def rich_privmsgs(draw: st.DrawFn) -> str:
    text = draw(TEXT)
    if draw(st.booleans()) and len(text) > 2:
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start, len(text) + 2))
        ranges = f"{draw(st.sampled_from(['25', 'emotesv2_abc', '1902']))}:{start}-{end}"
        if draw(st.booleans()):
            ranges += f",{draw(st.integers(0, len(text)))}-{draw(st.integers(0, len(text)))}"
        emotes = ranges
    else:
        emotes = ""
    tags: dict[str, str] = {
        "badge-info": ",".join(f"{n}/{v}" for n, v in draw(st.lists(BADGE, max_size=2))),
        "badges": ",".join(f"{n}/{v}" for n, v in draw(st.lists(BADGE, max_size=4))),
        "color": draw(st.sampled_from(["", "#1E90FF", "#abcdef", "#zz"])),
        "display-name": draw(VALUE),
        "emotes": emotes,
        "first-msg": draw(st.sampled_from(["0", "1"])),
        "id": draw(st.one_of(st.uuids().map(str), st.just(""), VALUE)),
        "mod": draw(st.sampled_from(["0", "1"])),
        "returning-chatter": draw(st.sampled_from(["0", "1"])),
        "room-id": draw(st.sampled_from(["", "12345", "0"])),
        "subscriber": draw(st.sampled_from(["0", "1"])),
        "tmi-sent-ts": draw(
            st.sampled_from(["", "1700000000123", "0", "-5", "253402300800000", "x"])
        ),
        "user-id": draw(st.sampled_from(["", "42", "9" * 30])),
    }
    if draw(st.booleans()):
        tags["bits"] = draw(st.sampled_from(["1", "100", "0", "9" * 25, "x"]))
        text = draw(st.sampled_from(["Cheer100 ", "cheer1 hi ", "Kappa50 ", ""])) + text
    if draw(st.booleans()):
        tags.update(
            {
                "reply-parent-msg-id": draw(VALUE),
                "reply-parent-user-id": draw(VALUE),
                "reply-parent-user-login": draw(VALUE),
                "reply-parent-display-name": draw(VALUE),
                "reply-parent-msg-body": draw(VALUE),
                "reply-thread-parent-msg-id": draw(VALUE),
                "reply-thread-parent-user-login": draw(VALUE),
            }
        )
    if draw(st.booleans()):
        tags.update({"source-room-id": draw(VALUE), "source-id": draw(VALUE)})
    if draw(st.booleans()):
        tags["custom-reward-id"] = draw(VALUE)
    if draw(st.booleans()):
        tags["msg-id"] = draw(st.sampled_from(["highlighted-message", "", "x"]))
    for key, value in draw(st.lists(st.tuples(VALUE, VALUE), max_size=3)):
        if key:
            tags[key] = value
    raw_tags = ";".join(f"{key}={escape_tag_value(value)}" for key, value in tags.items())
    if draw(st.booleans()):
        text = f"\x01ACTION {text}\x01"
    nick = draw(st.sampled_from(["viewer", "Ünï", "a"]))
    channel = draw(st.sampled_from(["#chan", "#Chan", "#", ""]))
    return f"@{raw_tags} :{nick}!{nick}@{nick}.tmi.twitch.tv PRIVMSG {channel} :{text}"


# Tag values as Twitch sends them, most without an escape (the shape the direct path takes).
PLAIN_CHARS = st.one_of(
    st.sampled_from(list("abcXYZ019_-/,:#.")),
    st.sampled_from(["é", "草", "🎉", "\x7f", "\x01", '"']),
    st.characters(min_codepoint=1, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)).filter(
        lambda c: c not in ";\\ \r\n="
    ),
)
PLAIN = st.text(PLAIN_CHARS, max_size=10)
TEXT = st.text(
    st.one_of(
        st.sampled_from(list("ab Kappa:)\"\\'\t")),
        st.sampled_from(["🎉", "草", "é", "\x00", "\u2028"]),
        st.characters(min_codepoint=1, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
    ).filter(lambda c: c not in "\r\n"),
    max_size=40,
)
# Escaped tag values (reply bodies, unknown tags) may hold anything, CR and LF included.
ESCAPED = st.one_of(
    st.text(st.sampled_from(list("a;\\ \r\n:s")), max_size=8).map(escape_tag_value),
    st.text(
        st.characters(min_codepoint=1, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
        max_size=8,
    ).map(escape_tag_value),
    # what escape_tag_value never writes: a lone trailing backslash, unknown escapes
    st.sampled_from(["\\", "a\\", "\\x", "\\\\", "x\\q\\", "\\é\\🎉", "é\\s"]),
)
# Unknown tag keys, some needing JSON escapes (a backslash stays as it is in a key).
KEY = st.one_of(PLAIN, st.text(st.sampled_from(list('ab\\"é🎉\x01')), min_size=1, max_size=4))
BADGES = st.lists(
    st.tuples(
        st.sampled_from(["vip", "broadcaster", "moderator", "subscriber", "premium", "é"]),
        st.sampled_from(["1", "0", "12", ""]),
    ),
    max_size=3,
).map(lambda pairs: ",".join(f"{name}/{version}" for name, version in pairs))


@st.composite
def direct_shaped_lines(draw: st.DrawFn) -> str:
    """PRIVMSGs of the shape the direct path takes, with values at its edges."""
    text = draw(TEXT)
    if draw(st.booleans()):
        text = draw(st.sampled_from(["\x01ACTION ", "\x01ACTION\x01", "\x01ACTIONx"])) + text
    size = len(text)
    ranges = [
        f"{draw(st.integers(0, size + 1))}-{draw(st.integers(0, size + 2))}"
        for _ in range(draw(st.integers(0, 3)))
    ]
    emote_id = draw(st.sampled_from(["25", "emotesv2_é", ""]))
    tags: dict[str, str] = {
        "badge-info": draw(BADGES),
        "badges": draw(BADGES),
        "color": draw(st.sampled_from(["", "#1e90fF", "#ABCDEF", "#12345", "#zzzzzz"])),
        "display-name": draw(PLAIN),
        "emotes": draw(st.sampled_from(["", f"{emote_id}:{','.join(ranges)}", "x", "1:2"])),
        "first-msg": draw(st.sampled_from(["0", "1", "", "11"])),
        "id": draw(st.one_of(st.uuids().map(str), st.just(""), PLAIN)),
        "mod": draw(st.sampled_from(["0", "1"])),
        "room-id": draw(st.sampled_from(["", "12345", "é"])),
        "tmi-sent-ts": draw(st.sampled_from(["", "1700000000123", "0", "999999999999999999"])),
        "user-id": draw(PLAIN),
    }
    if draw(st.booleans()):
        tags["bits"] = draw(st.sampled_from(["", "0", "1", "100"]))
    if draw(st.booleans()):
        for key in ("reply-parent-msg-id", "reply-parent-user-id", "reply-parent-user-login"):
            tags[key] = draw(PLAIN)
        tags["reply-parent-display-name"] = draw(PLAIN)
        tags["reply-parent-msg-body"] = draw(ESCAPED)
        if draw(st.booleans()):
            tags["reply-thread-parent-msg-id"] = draw(PLAIN)
            tags["reply-thread-parent-user-login"] = draw(PLAIN)
    for key in ("custom-reward-id", "msg-id", "subscriber", "returning-chatter"):
        if draw(st.booleans()):
            tags[key] = draw(st.sampled_from(["", "1", "x"]))
    for key, value in draw(st.lists(st.tuples(KEY, ESCAPED), max_size=3)):
        tags.setdefault(key, value)
    items = list(tags.items())
    items = draw(st.permutations(items))
    raw = ";".join(
        key if not value and draw(st.booleans()) else f"{key}={value}" for key, value in items
    )
    nick = draw(st.sampled_from(["viewer", "MiXeD", "", "a-b"]))
    host = draw(st.sampled_from([f"{nick}!{nick}@{nick}.tmi.twitch.tv", f"{nick}!x", f"{nick}!y@"]))
    channel = draw(st.sampled_from(["#chan", "#Chan", "#", "chan", "#a:b"]))
    ending = draw(st.sampled_from(["", "\r\n", "\n", "\r"]))
    return f"@{raw} :{host} PRIVMSG {channel} :{text}{ending}"


# A few characters to splice into real lines: every scanning decision at its edge.
MUTATION = st.lists(
    st.sampled_from(
        [*';=\\ :#@!/,-09\x00\x01"\r\n', "é", "🎉", "草", "\ud800", "\\s", "\\:", "ACTION"]
    ),
    max_size=3,
).map("".join)
