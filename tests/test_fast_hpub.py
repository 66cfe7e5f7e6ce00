"""``_native.speedups.hpub_frames``: the C twin of ``bus.nats.hpub_frame``, for a slice.

It returns the frames the reference builds one after another, or None (the reference must
build them) when a header value is one the reference would normalize;
tests/test_bus_nats.py ties the reference to nats-py's own encoding.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingress_egress import _native
from ingress_egress.bus.nats import hpub_frame
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.envelope.outbound import message_to_outbound
from ingress_egress.protocol import parse_line
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.twitch.messages import from_irc
from tests.support.leaks import memory_kept

speedups = _native.speedups


def one(subject: object, message: object) -> bytes | None:
    """The C frame of one message (a slice of one)."""
    assert speedups is not None
    frame: bytes | None = speedups.hpub_frames(subject, [message])
    return frame


pytestmark = pytest.mark.skipif(speedups is None, reason="the C extension is not built")

HEADER_VALUE = st.one_of(
    st.uuids().map(str),
    st.text(max_size=40),
    st.sampled_from(["", " x", "x ", "a\r\nb", "\x1f", "é", "\x7f", "a b", "x\ud800"]),
)
SUBJECT = st.sampled_from([b"internal.ingress.v1", b"", b"bench.internal.ingress.v1"])


def messages(count: int) -> list[OutboundMessage]:
    generator = TrafficGenerator(seed=31)
    builder, span = EnvelopeBuilder(), RandomIds()
    out = []
    for i in range(count):
        typed = from_irc(parse_line(generator.privmsg(f"chan{i % 3}")[0]))
        out.append(message_to_outbound(builder, typed, None, span, 1.0))
    return out


def test_generated_messages_take_the_c_path_and_agree() -> None:
    assert speedups is not None
    for message in messages(200):
        frame = one(b"internal.ingress.v1", message)
        assert frame is not None
        assert frame == hpub_frame(b"internal.ingress.v1", message)


BASE = messages(1)[0]


@settings(max_examples=500, deadline=None)
@given(HEADER_VALUE, HEADER_VALUE, HEADER_VALUE, st.binary(max_size=64), SUBJECT)
@example("id", "00-" + "a" * 32 + "-" + "b" * 16 + "-01", "t", b"", b"s")
def test_any_header_values_agree_or_defer(
    dedup: str, trace: str, kind: str, data: bytes, subject: bytes
) -> None:
    assert speedups is not None
    message = dataclasses.replace(BASE, dedup_id=dedup, traceparent=trace, type=kind, data=data)
    frame = one(subject, message)
    if frame is not None:
        assert frame == hpub_frame(subject, message)
    plain = all(v.isascii() and v.isprintable() and " " not in v for v in (dedup, trace, kind))
    assert (frame is not None) == plain


def test_defers_for_what_is_not_an_outbound_message() -> None:
    assert one(b"s", object()) is None  # no such attributes: the reference raises
    assert one(b"s", dataclasses.replace(BASE, data="text")) is None
    assert one("s", BASE) is None

    class Exploding:
        @property
        def data(self) -> bytes:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        one(b"s", Exploding())


def test_the_nats_driver_frames_with_the_c_twin_and_falls_back() -> None:
    from ingress_egress.bus import nats as nats_driver

    assert nats_driver.frame_for is nats_driver._frame_c_or_python
    odd = dataclasses.replace(BASE, dedup_id=" id with spaces\r\n")  # the twin declines
    for message in (BASE, odd):
        assert nats_driver.frame_for(b"s", message) == hpub_frame(b"s", message)


def test_a_slice_is_framed_at_once_as_its_frames_one_after_another() -> None:
    from ingress_egress.bus import nats as nats_driver

    assert speedups is not None
    assert nats_driver.frames_for is nats_driver._frames_c_or_python
    slice_ = messages(50)
    expected = b"".join(hpub_frame(b"internal.ingress.v1", m) for m in slice_)
    assert speedups.hpub_frames(b"internal.ingress.v1", slice_) == expected
    assert nats_driver.frames_for(b"internal.ingress.v1", slice_) == expected
    assert speedups.hpub_frames(b"s", []) == b""


def test_a_slice_with_one_odd_message_is_declined_and_framed_one_by_one() -> None:
    from ingress_egress.bus import nats as nats_driver

    assert speedups is not None
    odd = dataclasses.replace(BASE, dedup_id=" id with spaces\r\n")
    slice_ = [*messages(3), odd, BASE]
    assert speedups.hpub_frames(b"s", slice_) is None
    assert speedups.hpub_frames(b"s", tuple(slice_)) is None  # a list only
    assert speedups.hpub_frames("s", [BASE]) is None
    assert nats_driver.frames_for(b"s", slice_) == b"".join(hpub_frame(b"s", m) for m in slice_)
    with pytest.raises(TypeError):
        speedups.hpub_frames(b"s")


def test_framing_slices_leaks_nothing() -> None:
    import sys

    assert speedups is not None
    slice_ = messages(20)
    odd = [*slice_, dataclasses.replace(BASE, dedup_id="a b")]
    counts = [sys.getrefcount(m) for m in slice_]

    def frame(rounds: int) -> None:
        for _ in range(rounds):
            speedups.hpub_frames(b"s", slice_)
            speedups.hpub_frames(b"s", odd)

    assert memory_kept(frame, rounds=2000, warm_up=200) < 10_000
    assert [sys.getrefcount(m) for m in slice_] == counts
