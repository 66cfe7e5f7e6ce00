"""Preparing a command's text for the wire, and making repeats distinct."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingress_egress.egress.repeats import (
    LastSent,
    RepeatRefused,
    avoid_repeat,
    is_repeat,
    toggle_suffix,
)
from ingress_egress.egress.text import (
    BLANK,
    MESSAGE_MAX_CODE_POINTS,
    NEUTRALISER,
    REPEAT_SUFFIX,
    TextTooLong,
    helix_message,
    irc_body,
    part_budget,
    prepare_text,
)

CONTROL = re.compile("[\u0000-\u001f\u007f-\u009f]")


def kept(text: str) -> str:
    """The characters that must survive, in order: all but whitespace and controls."""
    return "".join(c for c in text if c not in BLANK and not CONTROL.match(c))


def test_crlf_and_nul_cannot_inject_a_command() -> None:
    prepared = prepare_text("hi\r\nPRIVMSG #other :owned\x00 x", is_action=False)
    assert prepared.parts == ("hi  PRIVMSG #other :owned  x",)


@pytest.mark.parametrize("text", ["/ban someone", ".timeout x 600", "  /me waves", "\t.mods"])
def test_a_leading_slash_or_dot_is_neutralised(text: str) -> None:
    (part,) = prepare_text(text, is_action=False).parts
    assert part.startswith(NEUTRALISER)
    assert part[1:] == text.strip()


def test_a_slash_inside_the_text_is_left_alone() -> None:
    assert prepare_text("use /help or ... later", is_action=False).parts == (
        "use /help or ... later",
    )


def test_a_1200_character_text_is_split_at_whitespace_in_order() -> None:
    words = [f"w{i:04d}" for i in range(240)]  # 5 characters + a space each: 1,199
    prepared = prepare_text(" ".join(words), is_action=False)
    assert len(prepared.parts) == 3
    assert all(len(part) <= part_budget(False) for part in prepared.parts)
    assert " ".join(prepared.parts).split() == words  # no word cut, none lost


def test_a_single_long_word_is_cut_hard() -> None:
    prepared = prepare_text("x" * 1000, is_action=False)
    assert [len(p) for p in prepared.parts] == [part_budget(False)] * 2 + [
        1000 - 2 * part_budget(False)
    ]


def test_drop_refuses_what_needs_more_than_one_message() -> None:
    with pytest.raises(TextTooLong):
        prepare_text("word " * 200, is_action=False, long_text="drop")
    assert prepare_text("word " * 90, is_action=False, long_text="drop").parts


def test_the_budget_keeps_room_for_every_addition() -> None:
    assert part_budget(False) + len(NEUTRALISER) + len(REPEAT_SUFFIX) == MESSAGE_MAX_CODE_POINTS
    assert part_budget(True) == part_budget(False) - len("/me ")


def test_actions_on_each_transport() -> None:
    assert irc_body("waves", is_action=True) == "\x01ACTION waves\x01"
    assert irc_body("waves", is_action=False) == "waves"
    assert helix_message("waves", is_action=True) == "waves"


texts = st.text(
    alphabet=st.sampled_from(["a", "b", " ", "/", ".", "\r", "\n", "\x00", "\t", "\u3000", "é"])
    | st.characters(codec="utf-8")
    | st.just("\ufeff"),
    max_size=1600,
)


@settings(max_examples=400)
@given(texts, st.booleans())
def test_parts_are_safe_bounded_and_keep_every_visible_character(
    text: str, is_action: bool
) -> None:
    prepared = prepare_text(text, is_action)
    for part in prepared.parts:
        longest = toggle_suffix(part)  # the most a repeat adds
        assert len(longest) <= MESSAGE_MAX_CODE_POINTS - (4 if is_action else 0)
        assert not any(c in part for c in "\r\n\x00")
        assert CONTROL.search(part) is None
        assert part == part.strip(BLANK) and part
        assert not part.lstrip(BLANK).startswith(("/", "."))
    joined = "".join(prepared.parts).replace(NEUTRALISER, "")
    assert kept(joined) == kept(text.replace(NEUTRALISER, ""))


@settings(max_examples=200)
@given(texts)
def test_splitting_cuts_only_at_whitespace_unless_a_word_is_too_long(text: str) -> None:
    prepared = prepare_text(text, is_action=False)
    words = split_blank(CONTROL.sub(" ", text))
    if all(len(w) <= part_budget(False) for w in words):
        rebuilt = [w for part in prepared.parts for w in split_blank(part)]
        assert [w.removeprefix(NEUTRALISER) for w in rebuilt] == [
            w.removeprefix(NEUTRALISER) for w in words
        ]


def split_blank(text: str) -> list[str]:
    return [w for w in re.split(f"[{re.escape(BLANK)}]+", text) if w]


# -- repeats ------------------------------------------------------------------------------


def test_a_repeat_within_30s_is_made_distinct_and_alternates() -> None:
    first = avoid_repeat("pong", None, 100.0, privileged=False)
    second = avoid_repeat("pong", LastSent(first, 100.0), 101.0, privileged=False)
    third = avoid_repeat("pong", LastSent(second, 101.0), 102.0, privileged=False)
    assert first == "pong" and second == "pong" + REPEAT_SUFFIX and third == "pong"


def test_twitch_ignores_surrounding_whitespace_when_comparing() -> None:
    assert is_repeat(" pong ", LastSent("pong", 0.0), 10.0, 30.0)
    assert not is_repeat("pong", LastSent("pong", 0.0), 30.0, 30.0)  # the window has passed
    assert not is_repeat("ping", LastSent("pong", 0.0), 1.0, 30.0)


def test_drop_refuses_a_repeat_unless_privileged() -> None:
    previous = LastSent("pong", 100.0)
    with pytest.raises(RepeatRefused) as caught:
        avoid_repeat("pong", previous, 110.0, privileged=False, policy="drop")
    assert caught.value.reason == "msg_duplicate"
    assert avoid_repeat("pong", previous, 110.0, privileged=True, policy="drop") == "pong"
    assert avoid_repeat("pong", previous, 131.0, privileged=False, policy="drop") == "pong"


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["a", "a ", "b", "a" + REPEAT_SUFFIX]), max_size=30))
def test_consecutive_messages_never_look_identical_to_twitch(texts_sent: list[str]) -> None:
    previous: LastSent | None = None
    for step, text in enumerate(texts_sent):
        sent = avoid_repeat(text, previous, float(step), privileged=False)
        assert not is_repeat(sent, previous, float(step), 30.0)
        previous = LastSent(sent, float(step))
