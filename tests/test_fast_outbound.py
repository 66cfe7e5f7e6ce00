"""``envelope.outbound.message_to_outbound``: the C twin against its Python reference.

The reference is ``EnvelopeBuilder.build`` + ``to_outbound`` (orjson). The C twin writes a
PRIVMSG's JSON itself; the ``OutboundMessage`` it returns must equal the reference's, its
``data`` byte for byte. Randomness is made equal on both sides: twin ``RandomIds`` holding
the same block (and, across block refills, the same seeded ``os.urandom``), one clock.
"""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingress_egress import _native
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.envelope import EnvelopeBuilder, encode_envelope, outbound
from ingress_egress.envelope import ids as ids_module
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.envelope.outbound import _message_to_outbound_py, message_to_outbound
from ingress_egress.protocol import IrcParseError, parse_line
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import lines_to_outbound
from ingress_egress.twitch.messages import Privmsg, from_irc
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
from tests.support.native import implementation

speedups = _native.speedups
needs_c = pytest.mark.skipif(speedups is None, reason="the C extension is not built")


def outcome(work: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", work()
    except Exception as error:  # compared: both paths must fail alike
        return "error", (type(error), str(error))


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
        "from ingress_egress.envelope import outbound\n"
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
        grown = memory_kept(run, rounds=30)
    assert grown < 64 * 1024, f"{grown} bytes kept"


# -- lines_to_outbound: a read loop's batch in one call ---------------------------------------


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
