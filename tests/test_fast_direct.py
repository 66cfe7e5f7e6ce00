"""``lines_to_outbound``'s direct path (C): a raw PRIVMSG line straight to its OutboundMessage.

The direct path scans a line into spans and writes the envelope JSON from them, without the
IrcMessage / Privmsg objects of the per-line path (``parse_line``, ``from_irc``,
``message_to_outbound``). It must give exactly what the per-line path gives: the same items
(``data`` byte for byte), the same ids drawn from both ``RandomIds``, the same state left in
the builder's clocks and in the badge cache. ``set_direct_enabled(False)`` switches only
the direct path off, so both run in one process on twin builders.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingress_egress import _native
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope import ids as ids_module
from ingress_egress.envelope.ids import IsoClock, RandomIds
from ingress_egress.protocol import escape_tag_value
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import lines_to_outbound
from ingress_egress.twitch.messages import common
from tests.support.irc_lines import (
    FIXTURE_LINES,
    MONOTONIC,
    RECEIVED,
    comparable,
    privmsg_lines,
    rich_privmsgs,
    twins,
    twitch_like_lines,
)
from tests.support.leaks import memory_kept

speedups = _native.speedups
needs_c = pytest.mark.skipif(speedups is None, reason="the C extension is not built")

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def direct(enabled: bool) -> Iterator[None]:
    assert speedups is not None
    speedups.set_direct_enabled(enabled)
    try:
        yield
    finally:
        speedups.set_direct_enabled(True)


def stats() -> tuple[int, int]:
    assert speedups is not None
    taken, declined = speedups.direct_stats()
    return taken, declined


def clock_state(clock: IsoClock) -> list[Any]:
    return [getattr(clock, name) for name in IsoClock.__slots__]


def state(builder: EnvelopeBuilder, span: RandomIds) -> list[Any]:
    """What a conversion may change: both id sources, both clocks, the badge cache."""
    return [
        (builder._ids._hex, builder._ids._pos),
        (span._hex, span._pos),
        clock_state(builder._received),
        clock_state(builder._sent),
        dict(common._badge_cache),
    ]


def run(
    lines: list[str], on: bool, received_at: float | None, shared: bool, pair: Any, cache: dict
) -> tuple[list[Any], list[Any], tuple[int, int]]:
    builder, span = pair
    common._badge_cache.clear()
    common._badge_cache.update(cache)
    before = stats()
    with direct(on):
        items = lines_to_outbound(lines, builder, received_at, span, MONOTONIC)
    after = stats()
    return items, state(builder, span), (after[0] - before[0], after[1] - before[1])


def check(
    lines: list[str], received_at: float | None = RECEIVED, shared: bool = False
) -> tuple[int, int]:
    """The direct path's items and state equal the per-line path's; its (taken, declined)."""
    (builder_old, span_old), (builder_new, span_new) = twins(shared)
    cache = dict(common._badge_cache)
    want, want_state, old_stats = run(
        lines, False, received_at, shared, (builder_old, span_old), cache
    )
    got, got_state, new_stats = run(
        lines, True, received_at, shared, (builder_new, span_new), cache
    )
    assert old_stats == (0, 0), "switched off, the direct path must not run"
    assert [comparable(item) for item in got] == [comparable(item) for item in want]
    for old, new in zip(want, got, strict=True):
        if type(old) is OutboundMessage:
            assert new.data == old.data
    assert got_state == want_state
    return new_stats


# -- the switch and the counters ------------------------------------------------------------


def _corpus(count: int, seed: int) -> list[str]:
    generator = TrafficGenerator(seed=seed)
    return [generator.privmsg(f"chan{i % 5}")[0] for i in range(count)]


CORPUS = _corpus(240, seed=31)


@needs_c
def test_switch_is_documented_and_on_by_default() -> None:
    assert speedups is not None
    assert "per-line path" in (speedups.set_direct_enabled.__doc__ or "")
    (builder, span), _ = twins()
    before = stats()
    lines_to_outbound(CORPUS[:5], builder, RECEIVED, span, MONOTONIC)
    assert stats()[0] - before[0] == 5


@needs_c
def test_simulator_traffic_takes_the_direct_path() -> None:
    """Every generated PRIVMSG (cheers, replies, emotes, non-ASCII text) goes direct."""
    taken, declined = check(CORPUS)
    assert (taken, declined) == (len(CORPUS), 0)
    assert sum("bits=" in line for line in CORPUS) > 0
    assert sum(not line.isascii() for line in CORPUS) > 0
    assert sum("reply-parent-msg-id=" in line for line in CORPUS) > 0


@needs_c
def test_simulator_traffic_agrees_in_read_sized_batches() -> None:
    lines = _corpus(600, seed=7)
    for shared in (False, True):
        for start in range(0, len(lines), 50):
            check(lines[start : start + 50], shared=shared)


@needs_c
def test_fixture_lines_agree() -> None:
    check(FIXTURE_LINES)
    check(FIXTURE_LINES, shared=True)
    for line in FIXTURE_LINES:
        check([line])


@needs_c
def test_received_at_none_reads_the_clock_once_per_line_as_before() -> None:
    taken, declined = check(CORPUS[:20], received_at=None)
    assert (taken, declined) == (0, 0)  # the builder's clock is Python: the per-line path


@needs_c
def test_declined_shapes_agree_and_are_counted() -> None:
    base = CORPUS[0]
    tags, rest = base.split(" ", 1)
    declined = [
        tags + ";source-room-id=1;source-id=x " + rest,  # shared chat
        tags + ";display-name=\\sPadded " + rest,  # an escape in an interpreted tag
        tags.replace("color=", "color=\\s") + " " + rest,
        tags + ";id=dup " + rest,  # a repeated key
        tags.replace("tmi-sent-ts=", "tmi-sent-ts=+") + " " + rest,  # int() takes it
        tags + " " + rest.replace("PRIVMSG #", "PRIVMSG  #"),
        tags + " " + rest.replace("PRIVMSG #chan0 :", "PRIVMSG #chan0 extra :"),
        tags + " " + rest.replace(":", ":Ü", 1),  # a non-ASCII nick
        tags + " " + rest + "\ud800",  # a lone surrogate
        tags.replace("emotes=", "emotes=25:0-\u0663/") + " " + rest,  # an Arabic-Indic digit
        tags + ";bits=" + "9" * 30 + " " + rest,
        "PING :tmi.twitch.tv",
        "@bad\\",
    ]
    taken, count = check(declined)
    assert taken == 0
    assert count == len(declined)
    taken, count = check([*CORPUS[:3], *declined, *CORPUS[3:6]])
    assert (taken, count) == (6, len(declined))


@needs_c
def test_cheer_amounts_beyond_64_bits_are_text_on_both_paths() -> None:
    """A cheer amount beyond 64 bits is no cheer (no envelope could carry it): the direct
    path takes the line like any other, with the same (empty) cheers as the reference."""
    base = next(line for line in CORPUS if "bits=" not in line)
    tags, rest = base.split(" ", 1)
    channel_text = rest.split(" :", 1)
    line = f"{tags};bits=5 {channel_text[0]} :Cheer{'9' * 30} hi"
    taken, declined = check([line, CORPUS[2]])
    assert (taken, declined) == (2, 0)
    builder = EnvelopeBuilder(clock=lambda: RECEIVED)
    (out,) = lines_to_outbound([line], builder, RECEIVED, RandomIds(), MONOTONIC)
    assert orjson.loads(out.data)["payload"]["cheers"] == []


@needs_c
def test_id_block_refills_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of lines in a row: at the end of an id block the direct path declines and the
    per-line path refills it (os.urandom seeded alike on both sides)."""
    lines = CORPUS * 3

    def go(on: bool, shared: bool) -> tuple[list[Any], int]:
        monkeypatch.setattr(ids_module.os, "urandom", random.Random(5).randbytes)
        builder = EnvelopeBuilder(clock=lambda: RECEIVED)
        span = builder._ids if shared else RandomIds()
        before = stats()
        with direct(on):
            items = [
                comparable(item)
                for start in range(0, len(lines), 50)
                for item in lines_to_outbound(
                    lines[start : start + 50], builder, RECEIVED, span, MONOTONIC
                )
            ]
        return items, stats()[1] - before[1]

    for shared in (False, True):
        (want, _), (got, declined) = go(False, shared), go(True, shared)
        assert got == want
        assert 0 < declined < len(lines) // 20


@needs_c
def test_subclassed_builder_uses_the_per_line_path() -> None:
    class Builder(EnvelopeBuilder):
        pass

    builder, span = Builder(clock=lambda: RECEIVED), RandomIds()
    before = stats()
    items = lines_to_outbound(CORPUS[:4], builder, RECEIVED, span, MONOTONIC)
    assert stats() == before
    assert [type(item) for item in items] == [OutboundMessage] * 4


@needs_c
def test_disabled_extension_uses_the_reference() -> None:
    (builder, span), _ = twins()
    before = stats()
    _native.set_enabled(False)
    try:
        items = lines_to_outbound(CORPUS[:4], builder, RECEIVED, span, MONOTONIC)
    finally:
        _native.set_enabled(True)
    assert stats() == before
    assert [type(item) for item in items] == [OutboundMessage] * 4


# -- generated lines ------------------------------------------------------------------------

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


@needs_c
@PROPERTY
@given(direct_shaped_lines())
@example("@id=1;badges=vip/1,vip/2 :A!a@a PRIVMSG #C :x")
@example('@id=;room-id=1;emotes=25:0-0,0-0/26:0-0 :a!a@a PRIVMSG #c :\x00\x1f"\\')
@example("@=x;;a :a!a@a PRIVMSG #c :\x01ACTION\x01")
@example('@k\\ey=1;a"b=\\s;id=x :a!a@a PRIVMSG #c :🎉')  # a backslash, '"' in keys
@example("@k\\ey=1;id=x :a!a@a PRIVMSG #c :草")
@example("@k\\ey=1;id=x :a!a@a PRIVMSG #c :ascii")
def test_direct_shaped_lines_agree(line: str) -> None:
    check([line])


@needs_c
@PROPERTY
@given(rich_privmsgs())
def test_rich_privmsg_lines_agree(line: str) -> None:
    check([line])


@needs_c
@PROPERTY
@given(privmsg_lines())
def test_edgy_privmsg_lines_agree(line: str) -> None:
    check([line])


@needs_c
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(twitch_like_lines())
def test_any_line_agrees(line: str) -> None:
    check([line])


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            direct_shaped_lines(), rich_privmsgs(), twitch_like_lines(), st.sampled_from(CORPUS)
        ),
        max_size=10,
    ),
    st.booleans(),
)
def test_mixed_batches_agree(lines: list[str], shared: bool) -> None:
    check(lines, shared=shared)


MUTATION = st.lists(
    st.sampled_from(
        [*';=\\ :#@!/,-09\x00\x01"\r\n', "é", "🎉", "草", "\ud800", "\\s", "\\:", "ACTION"]
    ),
    max_size=3,
).map("".join)


@needs_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_simulator_lines_agree(data: st.DataObject) -> None:
    """Real lines with a few characters replaced: every scanning decision at its edge."""
    line = data.draw(st.sampled_from(CORPUS))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(line)))
        cut = data.draw(st.integers(0, 3))
        line = line[:at] + data.draw(MUTATION) + line[at + cut :]
    check([line])


# -- no leaks -----------------------------------------------------------------------------------


@needs_c
def test_no_leak() -> None:
    """Taken, declined, late-declined and failing lines keep no memory."""
    tags, rest = CORPUS[0].split(" ", 1)
    odd = [
        tags + ";source-room-id=1 " + rest,  # declined
        f"{tags};bits=5 {rest.split(' :', 1)[0]} :Cheer{'9' * 30}",  # late decline, raises
        tags + " " + rest + "\ud800",  # declined, raises in the per-line path
        "@bad\\",  # a parse error
        "PING :tmi.twitch.tv",
    ]
    batch = [*CORPUS[:40], *odd]
    builder, span = EnvelopeBuilder(clock=lambda: RECEIVED), RandomIds()

    def go(rounds: int) -> None:
        for _ in range(rounds):
            lines_to_outbound(batch, builder, RECEIVED, span, MONOTONIC)

    grown = memory_kept(go, rounds=40)
    assert grown < 64 * 1024, f"{grown} bytes kept"
    line = CORPUS[5]
    refs = sys.getrefcount(line)
    go(5)
    assert sys.getrefcount(line) == refs
