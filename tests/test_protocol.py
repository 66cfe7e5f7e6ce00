"""IRC line parsing: IRCv3 tag unescaping, prefixes, params, and errors that never escape."""

from __future__ import annotations

import irctokens
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingress_egress.protocol import (
    IrcParseError,
    escape_tag_value,
    format_tags,
    parse_line,
    unescape_tag_value,
)


@pytest.mark.parametrize(
    ("escaped", "value"),
    [
        ("a\\sb", "a b"),
        ("a\\:b", "a;b"),
        ("a\\\\b", "a\\b"),
        ("a\\rb", "a\rb"),
        ("a\\nb", "a\nb"),
        ("a\\xb", "axb"),  # unknown escape: the backslash is dropped
        ("ab\\", "ab"),  # trailing lone backslash dropped
        ("\\\\\\\\", "\\\\"),
        ("\\\\s", "\\s"),  # an escaped backslash, then a plain "s"
        ("", ""),
    ],
)
def test_unescape(escaped: str, value: str) -> None:
    assert unescape_tag_value(escaped) == value


def test_tags_without_value_and_empty_value() -> None:
    msg = parse_line("@a;b=;c=x;d=e=f CMD")
    assert msg.tags == {"a": "", "b": "", "c": "x", "d": "e=f"}


def test_duplicate_tag_last_wins_and_empty_keys_ignored() -> None:
    assert parse_line("@a=1;a=2;=z; CMD").tags == {"a": "2"}


def test_prefix_parts() -> None:
    msg = parse_line(":nick!user@host.example PRIVMSG #chan :hi there")
    assert (msg.nick, msg.user, msg.host) == ("nick", "user", "host.example")
    assert msg.params == ["#chan", "hi there"]
    server = parse_line(":tmi.twitch.tv 001 justinfan1 :Welcome, GLHF!")
    assert (server.nick, server.host, server.command) == (None, "tmi.twitch.tv", "001")


def test_trailing_keeps_colons_and_spaces() -> None:
    msg = parse_line("PRIVMSG #a ::) hi  there ")
    assert msg.params == ["#a", ":) hi  there "]


def test_crlf_is_stripped() -> None:
    assert parse_line("PING :tmi.twitch.tv\r\n").params == ["tmi.twitch.tv"]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "empty line"),
        ("@a=b", "partial message"),
        ("@a=b :prefix", "no command"),
        (":prefix", "no command"),
        (": CMD", "empty prefix"),
        ("@a=b   ", "no command"),
    ],
)
def test_errors_are_clear(line: str, reason: str) -> None:
    with pytest.raises(IrcParseError) as caught:
        parse_line(line)
    assert reason in caught.value.reason
    assert caught.value.line == line


# -- property tests: round trips and a cross-check against irctokens -----------------------

KEY = st.from_regex(r"\A[a-z][a-z0-9-]{0,12}\Z")
VALUE = st.text(st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=20)
WORD = st.from_regex(r"\A[^\s:\x00@][^\s\x00]{0,10}\Z")
TRAILING = st.text(st.characters(blacklist_characters="\x00\r\n", codec="utf-8"), max_size=30)
COMMAND = st.sampled_from(["PRIVMSG", "USERNOTICE", "NOTICE", "001", "CLEARCHAT", "JOIN"])


@given(VALUE)
def test_escape_round_trip(value: str) -> None:
    escaped = escape_tag_value(value)
    assert not any(ch in escaped for ch in " ;\r\n")
    assert unescape_tag_value(escaped) == value


@settings(max_examples=400)
@given(
    tags=st.dictionaries(KEY, VALUE, max_size=6),
    prefix=st.one_of(st.none(), WORD),
    command=COMMAND,
    middle=st.lists(WORD, max_size=3),
    trailing=st.one_of(st.none(), TRAILING),
)
def test_agrees_with_irctokens(tags, prefix, command, middle, trailing) -> None:
    parts = [format_tags(tags)] if tags else []
    if prefix is not None:
        parts.append(":" + prefix)
    parts.append(command)
    parts.extend(middle)
    if trailing is not None:
        parts.append(":" + trailing)
    line = " ".join(parts)
    ours = parse_line(line)
    theirs = irctokens.tokenise(line)
    assert ours.tags == (theirs.tags or {}) == tags
    assert ours.prefix == (str(theirs.source) if theirs.source is not None else None)
    assert ours.command == theirs.command
    assert ours.params == theirs.params


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_parse_error(text: str) -> None:
    try:
        msg = parse_line(text)
    except IrcParseError as error:
        assert error.reason
    else:
        assert msg.command
