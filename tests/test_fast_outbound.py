"""``pipeline.outbound.message_to_outbound``: the C twin against its Python reference.

The reference is ``EnvelopeBuilder.build`` + ``to_outbound`` (orjson). The C twin writes a
PRIVMSG's JSON itself; the ``OutboundMessage`` it returns must equal the reference's, its
``data`` byte for byte. Randomness is made equal on both sides: twin ``RandomIds`` holding
the same block (and, across block refills, the same seeded ``os.urandom``), one clock.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingress_egress import _native
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import EnvelopeBuilder, encode_envelope
from ingress_egress.envelope import ids as ids_module
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.pipeline import outbound
from ingress_egress.pipeline.outbound import (
    _message_to_outbound_py,
    lines_to_outbound,
    message_to_outbound,
)
from ingress_egress.protocol import IrcMessage, IrcParseError, escape_tag_value, parse_line
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.twitch.messages import Privmsg, from_irc
from tests.test_speedups import privmsg_lines, twitch_like_lines

speedups = _native.speedups
needs_c = pytest.mark.skipif(speedups is None, reason="the C extension is not built")

FIXTURE = Path(__file__).parent / "fixtures" / "twitch_irc_vectors.jsonl"
VECTORS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
FIXTURE_LINES = [row["raw"] for row in VECTORS if row["raw_kind"] == "line"]
RECEIVED = 1_700_000_000.123
MONOTONIC = 4242.5


@contextmanager
def implementation(native: bool) -> Iterator[None]:
    before = _native.enabled()
    _native.set_enabled(native)
    try:
        yield
    finally:
        _native.set_enabled(before)


def outcome(work: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", work()
    except Exception as error:  # compared: both paths must fail alike
        return "error", (type(error), str(error))


def twins(shared: bool = False, head: str = "") -> list[tuple[EnvelopeBuilder, RandomIds]]:
    """Two (builder, span ids) pairs drawing the same ids; ``shared``: one RandomIds each;
    ``head``: the first characters of the builders' id block."""
    block, span_block = head + os.urandom(16 * 256).hex(), os.urandom(16 * 256).hex()
    pairs = []
    for _ in range(2):
        ids = RandomIds()
        ids._hex, ids._pos = block, 0
        span = ids
        if not shared:
            span = RandomIds()
            span._hex, span._pos = span_block, 0
        pairs.append((EnvelopeBuilder(clock=lambda: RECEIVED, ids=ids), span))
    return pairs


def typed_of(line: str) -> Any:
    try:
        return from_irc(parse_line(line))
    except IrcParseError:
        return None


def check_message(
    typed: Any, received_at: float | None = RECEIVED, shared: bool = False, head: str = ""
) -> Any:
    """The C conversion equals the reference (value, bytes, ids drawn afterwards)."""
    (builder_py, span_py), (builder_c, span_c) = twins(shared, head)
    with implementation(False):
        want = outcome(
            lambda: _message_to_outbound_py(builder_py, typed, received_at, span_py, MONOTONIC)
        )
    with implementation(True):
        got = outcome(lambda: message_to_outbound(builder_c, typed, received_at, span_c, MONOTONIC))
    assert got == want
    # both drew the same number of ids: the next draws agree
    assert builder_c._ids.trace_id() == builder_py._ids.trace_id()
    assert span_c.span_id() == span_py.span_id()
    if want[0] == "ok" and want[1] is not None:
        message = got[1]
        assert type(message) is OutboundMessage
        assert message.data == want[1].data
        envelope = orjson.loads(message.data)
        assert message.envelope_id == envelope["id"]
        assert message.traceparent == f"00-{envelope['traceId']}-{span_py._hex[:16]}-01" or (shared)
    return got


def check_line(line: str) -> None:
    typed = typed_of(line)
    if typed is not None:
        check_message(typed)
        check_message(typed, None)
        check_message(typed, shared=True)


@contextmanager
def recording_reference() -> Iterator[list[Any]]:
    """Route the C twin's fallbacks through a recorder (to prove the C path ran)."""
    assert speedups is not None
    calls: list[Any] = []

    def recorder(*args: Any) -> Any:
        calls.append(args[1])
        return _message_to_outbound_py(*args)

    speedups.configure_outbound(OutboundMessage, outbound._direct, recorder)
    try:
        yield calls
    finally:
        speedups.configure_outbound(OutboundMessage, outbound._direct, _message_to_outbound_py)


# -- wiring --------------------------------------------------------------------------------


def test_the_c_twin_is_wired_unless_pure_python() -> None:
    if _native.FORCE_PURE_PYTHON or speedups is None:
        assert message_to_outbound is _message_to_outbound_py
        return
    assert "outbound" in _native.ACTIVE
    assert message_to_outbound is speedups.message_to_outbound
    assert outbound._direct, "OutboundMessage changed: update OM_NAMES in _speedups.c"


def test_pure_python_env_var_keeps_the_reference() -> None:
    code = (
        "from ingress_egress import _native\n"
        "from ingress_egress.pipeline import outbound\n"
        "assert outbound.message_to_outbound is outbound._message_to_outbound_py\n"
        "assert 'outbound' not in _native.ACTIVE\n"
        "print('pure')\n"
    )
    env = {**os.environ, "INGRESS_EGRESS_PURE_PYTHON": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pure"


def test_reference_is_build_then_to_outbound() -> None:
    """Whatever path runs, the result is the envelope's JSON and its metadata."""
    line = CORPUS[0]
    (builder, span), _ = twins()
    message = message_to_outbound(builder, typed_of(line), RECEIVED, span, MONOTONIC)
    assert message is not None
    envelope = orjson.loads(message.data)
    assert message.data == encode_envelope(envelope)
    assert message.dedup_id == envelope["payload"]["messageId"]
    assert message.type == envelope["type"] == "external.chat.message.v1"
    assert message.ordering_key == envelope["source"]["channelId"]
    assert message.time == envelope["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert message.channel == envelope["source"]["channel"]
    assert message.received_at == MONOTONIC
    assert message.traceparent.startswith(f"00-{envelope['traceId']}-")
    assert len(message.traceparent) == 55 and message.traceparent.endswith("-01")


# -- differential: fixture lines, generated traffic, hypothesis -----------------------------


@needs_c
@pytest.mark.parametrize("line", FIXTURE_LINES)
def test_fixture_line_agrees(line: str) -> None:
    check_line(line)


def _corpus(count: int) -> list[str]:
    generator = TrafficGenerator(seed=23)
    return [generator.privmsg(f"chan{i % 5}")[0] for i in range(count)]


CORPUS = _corpus(200)


@needs_c
def test_generated_traffic_agrees_and_takes_the_c_path() -> None:
    with recording_reference() as fallbacks:
        for line in CORPUS:
            check_message(typed_of(line))
    assert fallbacks == [], "typical PRIVMSGs must not fall back to the reference"


@needs_c
def test_sequences_across_id_block_refills_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of messages in a row (RandomIds refills its block several times)."""
    typed = [typed_of(line) for line in CORPUS] + [typed_of(CORPUS[0].replace(";id=", ";x="))]
    typed = typed * 3

    def run(native: bool, shared: bool) -> list[Any]:
        seeded = random.Random(5)
        monkeypatch.setattr(ids_module.os, "urandom", seeded.randbytes)
        builder = EnvelopeBuilder(clock=lambda: RECEIVED)
        span = builder._ids if shared else RandomIds()
        with implementation(native):
            return [message_to_outbound(builder, m, None, span, MONOTONIC) for m in typed]

    for shared in (False, True):
        assert run(True, shared) == run(False, shared)


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


PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_c
@PROPERTY
@given(rich_privmsgs())
@example("@id=1;bits=5;badges=vip/1,vip/2 :a!a@a PRIVMSG #c :Cheer5 \ud800")
@example('@id=;room-id=1 :a!a@a PRIVMSG #c :\x00\x1f"\\')
def test_rich_privmsg_lines_agree(line: str) -> None:
    check_line(line)


@needs_c
@PROPERTY
@given(privmsg_lines())
def test_edgy_privmsg_lines_agree(line: str) -> None:
    check_line(line)


@needs_c
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(twitch_like_lines())
def test_any_event_line_agrees(line: str) -> None:
    check_line(line)


# -- the fallbacks --------------------------------------------------------------------------


@needs_c
def test_unencodable_text_fails_like_the_reference_and_draws_nothing() -> None:
    typed = typed_of("@id=;bits=1 :a!a@a PRIVMSG #c :Cheer1 \ud800")
    got = check_message(typed)
    assert got[0] == "error" and "surrogates" in got[1][1]


@needs_c
@pytest.mark.parametrize("head", ["0" * 32, "f" * 32 + "0" * 32, "0" * 64])
def test_an_all_zero_trace_id_is_skipped_as_the_reference_does(head: str) -> None:
    with_id = typed_of(CORPUS[7])
    without_id = typed_of(CORPUS[7].replace(";id=", ";x-id="))
    assert with_id.message_id and not without_id.message_id
    for typed in (with_id, without_id):
        for shared in (False, True):
            got = check_message(typed, shared=shared, head=head)
            assert orjson.loads(got[1].data)["traceId"] != "0" * 32


@needs_c
def test_odd_field_values_go_to_the_reference() -> None:
    base = typed_of(CORPUS[3])
    assert type(base) is Privmsg
    odd = [
        dataclasses.replace(base, bits=1.5),  # orjson writes floats its own way
        dataclasses.replace(base, bits=2**70),  # beyond 64 bits: orjson refuses
        dataclasses.replace(base, bits=2**63),  # u64: orjson accepts
        dataclasses.replace(base, is_mod=1),
        dataclasses.replace(base, room_id=""),
        dataclasses.replace(base, custom_reward_id=None),
        dataclasses.replace(base, emotes=[*base.emotes, "not an emote"]),
    ]
    for typed in odd:
        check_message(typed)


@needs_c
def test_subclassed_builder_and_message_use_the_reference() -> None:
    typed = typed_of(CORPUS[4])

    class Custom(EnvelopeBuilder):
        def _message(self, msg: Privmsg, stamp: str) -> dict[str, Any]:
            return {"id": "x", "traceId": "0" * 31 + "1", "type": "t", "timestamp": stamp,
                    "source": {"channel": "c", "channelId": None}, "payload": {}}  # fmt: skip

    with recording_reference() as fallbacks:
        message = message_to_outbound(Custom(clock=lambda: 0.0), typed, None, RandomIds(), 1.0)
    assert message is not None and message.ordering_key == "c"
    assert fallbacks == [typed]


@needs_c
def test_a_wider_outbound_class_is_called_not_filled() -> None:
    @dataclasses.dataclass(slots=True)
    class Wider(OutboundMessage):
        extra: str = "default"

    typed = typed_of(CORPUS[5])
    (builder_py, span_py), (builder_c, span_c) = twins()
    want = _message_to_outbound_py(builder_py, typed, RECEIVED, span_py, MONOTONIC)
    assert speedups is not None
    speedups.configure_outbound(Wider, False, _message_to_outbound_py)
    try:
        got = message_to_outbound(builder_c, typed, RECEIVED, span_c, MONOTONIC)
    finally:
        speedups.configure_outbound(OutboundMessage, outbound._direct, _message_to_outbound_py)
    assert type(got) is Wider and got.extra == "default"
    assert dataclasses.astuple(got)[:-1] == dataclasses.astuple(want)


@needs_c
def test_disabled_c_path_calls_the_reference() -> None:
    with recording_reference() as calls, implementation(False):
        check_message(typed_of(CORPUS[6]))
        (builder, span), _ = twins()
        message_to_outbound(builder, typed_of(CORPUS[6]), RECEIVED, span, MONOTONIC)
    assert len(calls) == 1


@needs_c
def test_bad_arguments() -> None:
    with pytest.raises(TypeError):
        message_to_outbound(EnvelopeBuilder())  # type: ignore[call-arg]


# -- no leaks -----------------------------------------------------------------------------


@needs_c
def test_no_leak() -> None:
    typed = [typed_of(line) for line in CORPUS[:50]]
    odd = typed_of("@id=;bits=1 :a!a@a PRIVMSG #c :Cheer1 \ud800")
    builder, span = EnvelopeBuilder(), RandomIds()

    def run(rounds: int) -> None:
        for _ in range(rounds):
            for message in [*typed, odd]:
                try:
                    message_to_outbound(builder, message, None, span, MONOTONIC)
                except orjson.JSONEncodeError:
                    pass

    with implementation(True):
        run(3)
        gc.collect()
        tracemalloc.start()
        try:
            run(1)
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            run(30)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept"


# -- lines_to_outbound: a read loop's batch in one call ---------------------------------------


def comparable(item: Any) -> Any:
    """Exceptions and parsed lines (IrcMessage has no __eq__) as comparable values."""
    if isinstance(item, Exception):
        return (type(item), item.args, getattr(item, "reason", None))
    if isinstance(item, IrcMessage):
        return tuple(getattr(item, name) for name in IrcMessage.__slots__)
    if dataclasses.is_dataclass(item) and not isinstance(item, OutboundMessage):
        fields = dataclasses.fields(item)
        return (type(item), *(comparable(getattr(item, field.name)) for field in fields))
    return item


def check_batch(lines: list[str], received_at: float | None = RECEIVED) -> list[Any]:
    (builder_py, span_py), (builder_c, span_c) = twins()
    with implementation(False):
        want = lines_to_outbound(lines, builder_py, received_at, span_py, MONOTONIC)
    with implementation(True):
        got = lines_to_outbound(lines, builder_c, received_at, span_c, MONOTONIC)
    assert [comparable(item) for item in got] == [comparable(item) for item in want]
    assert builder_c._ids.trace_id() == builder_py._ids.trace_id()
    assert span_c.span_id() == span_py.span_id()
    return got


def test_lines_to_outbound_items() -> None:
    lines = [CORPUS[0], "PING :tmi.twitch.tv", "@bad\\", "", CORPUS[1]]
    (builder, span), _ = twins()
    items = lines_to_outbound(lines, builder, RECEIVED, span, MONOTONIC)
    assert [type(item).__name__ for item in items] == [
        "OutboundMessage",
        "Ping",
        "IrcParseError",
        "IrcParseError",
        "OutboundMessage",
    ]


@needs_c
def test_lines_to_outbound_wired() -> None:
    assert lines_to_outbound is speedups.lines_to_outbound


@needs_c
def test_batches_agree() -> None:
    check_batch(FIXTURE_LINES)
    check_batch(FIXTURE_LINES, None)
    check_batch([*CORPUS, "\ud800", "@id=;bits=1 :a!a@a PRIVMSG #c :Cheer1 \ud800", *CORPUS[:3]])
    check_batch([])


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(rich_privmsgs(), twitch_like_lines()), max_size=8))
def test_generated_batches_agree(lines: list[str]) -> None:
    check_batch(lines)


@needs_c
def test_batch_of_non_list_goes_to_the_reference() -> None:
    (builder, span), _ = twins()
    items = lines_to_outbound(tuple(CORPUS[:2]), builder, RECEIVED, span, MONOTONIC)  # type: ignore[arg-type]
    assert [type(item) for item in items] == [OutboundMessage, OutboundMessage]
