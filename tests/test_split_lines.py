"""``sources.irc.transport.split_lines``: the C twin (the native codec's) against its reference.

A chunk read from Twitch (complete lines, LF or CRLF) becomes its lines and a flag for
bytes that were not UTF-8 (replaced, counted by the transport): the C twin decodes line by
line and must give exactly the reference's lines, replacement characters included.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingress_egress import _native
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.sources.irc.codec import make_codec
from ingress_egress.sources.irc.transport import split_lines

speedups = _native.speedups
needs_c = pytest.mark.skipif(speedups is None, reason="the C extension is not built")

PIECES = st.sampled_from(
    [
        b"\n", b"\r", b"\r\n", b"\r\r", b"a", b" ", b"PRIVMSG #c :hi", b"\xc3\xa9",
        "🎉".encode(), b"\xf0\x9f\x8e", b"\xc3", b"\x80", b"\xff", b"\xed\xa0\x80", b"\x00",
        b"\xe2\x82", b"\xf4\x90\x80\x80", b"\xc0\xaf",
    ]
)  # fmt: skip
CHUNKS = st.one_of(st.lists(PIECES, max_size=30).map(b"".join), st.binary(max_size=200))


def both(chunk: bytes) -> tuple[object, object]:
    assert speedups is not None
    return speedups.split_lines(chunk), split_lines(chunk)


def test_reference_lines() -> None:
    assert split_lines(b"a\r\nb\n\r\n\n\r\r\nlast") == (["a", "b", "\r", "last"], 0)
    assert split_lines(b"ok\n\xff\n") == (["ok", "\ufffd"], 1)


def test_the_chosen_codec_brings_its_splitter() -> None:
    codec = make_codec(EnvelopeBuilder())
    if speedups is None:
        assert codec.split_lines is split_lines
    else:
        assert codec.split_lines is speedups.split_lines


@needs_c
@settings(max_examples=600, deadline=None)
@given(CHUNKS)
@example(b"")
@example(b"\n\n\r\n")
@example(b"\xc3\n\xa9\n")
@example(b"x\xf0\x9f\x8e\r\n")
def test_any_chunk_agrees(chunk: bytes) -> None:
    got, want = both(chunk)
    assert got == want
    assert type(got) is tuple and all(type(line) is str for line in got[0])  # type: ignore[union-attr]


@needs_c
def test_only_bytes_are_split() -> None:
    assert speedups is not None
    with pytest.raises(TypeError):
        speedups.split_lines(bytearray(b"a\nb\n"))
    with pytest.raises(AttributeError):
        split_lines("not bytes")  # type: ignore[arg-type]
