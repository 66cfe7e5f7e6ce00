"""The Python IRC codec and the per-line ids both codecs share (``LineIds``, ``random_hex``).

The lines are real Twitch shapes from tests/fixtures/twitch_irc_vectors.jsonl.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope.ids import ENVELOPE_NAMESPACE, LineIds, random_hex
from ingress_egress.envelope.types import MESSAGE, MODERATION, NOTIFICATION
from ingress_egress.protocol import IrcParseError
from ingress_egress.sources.irc import transport
from ingress_egress.sources.irc.codec import Decoded, PythonCodec, make_codec
from ingress_egress.twitch.messages import Clearchat, Ping, Privmsg, Usernotice

VECTORS = {
    row["case"]: row["raw"]
    for row in map(
        json.loads,
        (Path(__file__).parent / "fixtures" / "twitch_irc_vectors.jsonl")
        .read_text(encoding="utf-8")
        .splitlines(),
    )
}
PRIVMSG_NO_ID = VECTORS["privmsg_action_tmi"]  # no id tag: a random envelope id
PRIVMSG = VECTORS["privmsg_first_msg_1"]  # id=6efffc70-...: a stable envelope id
USERNOTICE_NO_ID = VECTORS["usernotice_sub_with_message_no_id_tag"]
CLEARCHAT = VECTORS["clearchat_timeout_5s"]
PING = VECTORS["ping_bare"]
MALFORMED = "@badges=;color=;display-name=A"  # tags and nothing else: not IRC

RECEIVED_AT = 1_700_000_000.25
MONOTONIC = 4242.5


def _uuid4(hex32: str) -> str:
    """The UUIDv4 layout of 32 hex digits (version and variant bits set), by the stdlib."""
    return str(uuid.UUID(hex=hex32, version=4))


class SeededHex:
    """``random_hex`` from a seeded generator, remembering what it handed out."""

    def __init__(self, seed: int = 7) -> None:
        self._random = random.Random(seed)
        self.calls: list[int] = []
        self.handed: list[str] = []

    def __call__(self, lines: int) -> str:
        self.calls.append(lines)
        value = self._random.randbytes(40 * lines).hex()
        self.handed.append(value)
        return value

    def line(self, index: int, call: int = -1) -> str:
        """Line ``index``'s 80 characters of call ``call``."""
        return self.handed[call][80 * index : 80 * index + 80]


def codec(hexes: SeededHex | None = None, builder: EnvelopeBuilder | None = None) -> PythonCodec:
    return PythonCodec(
        builder or EnvelopeBuilder(), random_hex=hexes or SeededHex(), monotonic=lambda: MONOTONIC
    )


def envelope(message: OutboundMessage) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(message.data)
    return loaded


# -- LineIds and random_hex ---------------------------------------------------------------


def test_line_ids_are_fixed_slices_of_their_80_hex_characters() -> None:
    hex80 = "".join(f"{i:02x}" for i in range(40))
    ids = LineIds(hex80)
    assert ids.uuid4() == _uuid4(hex80[0:32]) == "00010203-0405-4607-8809-0a0b0c0d0e0f"
    assert ids.trace_id() == hex80[32:64] == "101112131415161718191a1b1c1d1e1f"
    assert ids.span_id() == hex80[64:80] == "2021222324252627"
    # No state: every call answers the same.
    assert [ids.uuid4(), ids.trace_id(), ids.span_id()] * 2 == [
        ids.uuid4(),
        ids.trace_id(),
        ids.span_id(),
        ids.uuid4(),
        ids.trace_id(),
        ids.span_id(),
    ]


@pytest.mark.parametrize("seed", range(20))
def test_line_ids_uuid4_is_the_rfc_4122_v4_layout_of_the_first_32(seed: int) -> None:
    hex80 = random.Random(seed).randbytes(40).hex()
    value = LineIds(hex80).uuid4()
    assert value == _uuid4(hex80[0:32])
    assert uuid.UUID(value).version == 4
    assert uuid.UUID(value).variant == uuid.RFC_4122


def test_an_all_zero_trace_id_becomes_one_as_w3c_requires() -> None:
    ids = LineIds("ab" * 16 + "0" * 32 + "cd" * 8)
    assert ids.trace_id() == "0" * 31 + "1"
    assert ids.span_id() == "cd" * 8
    assert LineIds("0" * 32 + "0" * 31 + "2" + "0" * 16).trace_id() == "0" * 31 + "2"


def test_random_hex_is_80_lowercase_hex_characters_per_line() -> None:
    assert random_hex(0) == ""
    value = random_hex(3)
    assert re.fullmatch("[0-9a-f]{240}", value)
    assert random_hex(3) != value  # random: 960 bits do not repeat


# -- PythonCodec.decode -------------------------------------------------------------------


def test_a_mixed_read_is_sorted_into_envelopes_control_and_errors_in_line_order() -> None:
    hexes = SeededHex()
    lines = [PRIVMSG_NO_ID, USERNOTICE_NO_ID, PING, MALFORMED, PRIVMSG]
    decoded = codec(hexes).decode(lines, RECEIVED_AT)
    assert hexes.calls == [len(lines)]  # one draw per read

    assert [m.type for m in decoded.envelopes] == [MESSAGE, NOTIFICATION, MESSAGE]
    texts = [envelope(m)["payload"]["text"] for m in decoded.envelopes]
    assert texts == [
        "Hello :)",
        "Great stream -- keep it up!",
        "Chew your food slower... it's healthier",
    ]
    assert [(line, type(message)) for line, message in decoded.control] == [
        (USERNOTICE_NO_ID, Usernotice),
        (PING, Ping),
    ]
    assert [(line, type(error)) for line, error in decoded.errors] == [(MALFORMED, IrcParseError)]
    assert decoded.chat_only is False
    assert all(m.received_at == MONOTONIC for m in decoded.envelopes)
    assert {envelope(m)["timestamp"] for m in decoded.envelopes} == {"2023-11-14T22:13:20.250Z"}


def test_the_ids_of_line_i_come_from_slice_i_of_the_reads_random_hex() -> None:
    hexes = SeededHex(seed=11)
    lines = [PRIVMSG_NO_ID, USERNOTICE_NO_ID, PING, MALFORMED, PRIVMSG]
    chat, notice, stable = codec(hexes).decode(lines, RECEIVED_AT).envelopes

    first = hexes.line(0)
    assert chat.envelope_id == _uuid4(first[0:32])
    assert chat.traceparent == f"00-{first[32:64]}-{first[64:80]}-01"
    assert envelope(chat)["id"] == envelope(chat)["correlationId"] == chat.envelope_id
    assert envelope(chat)["traceId"] == first[32:64]
    assert chat.dedup_id == chat.envelope_id  # no Twitch id to de-duplicate by

    second = hexes.line(1)
    assert notice.envelope_id == _uuid4(second[0:32])
    assert notice.traceparent == f"00-{second[32:64]}-{second[64:80]}-01"

    # Line 4 (lines 2 and 3 made no envelope): slice 4, and a Twitch id keys the envelope id.
    fifth = hexes.line(4)
    message_id = "6efffc70-27a1-4637-9111-44e5104bb7da"
    assert stable.envelope_id == str(uuid.uuid5(ENVELOPE_NAMESPACE, f"twitch:{message_id}"))
    assert stable.dedup_id == message_id
    assert stable.traceparent == f"00-{fifth[32:64]}-{fifth[64:80]}-01"


def test_the_same_lines_ids_and_clocks_decode_to_the_same_bytes() -> None:
    lines = [PRIVMSG_NO_ID, CLEARCHAT, PRIVMSG]
    first = codec(SeededHex(3), EnvelopeBuilder(clock=lambda: RECEIVED_AT)).decode(lines, 1.0)
    second = codec(SeededHex(3), EnvelopeBuilder(clock=lambda: RECEIVED_AT)).decode(lines, 1.0)
    assert [m.data for m in first.envelopes] == [m.data for m in second.envelopes]
    assert [m.traceparent for m in first.envelopes] == [m.traceparent for m in second.envelopes]
    other = codec(SeededHex(4)).decode(lines, 1.0)
    assert [m.traceparent for m in other.envelopes] != [m.traceparent for m in first.envelopes]


def test_chat_only_is_true_only_without_control_and_errors() -> None:
    only_chat = codec().decode([PRIVMSG_NO_ID, PRIVMSG], RECEIVED_AT)
    assert only_chat.chat_only is True
    assert len(only_chat.envelopes) == 2 and only_chat.control == only_chat.errors == []

    with_ping = codec().decode([PRIVMSG, PING], RECEIVED_AT)
    assert with_ping.chat_only is False and len(with_ping.envelopes) == 1

    with_error = codec().decode([PRIVMSG, MALFORMED], RECEIVED_AT)
    assert with_error.chat_only is False and with_error.control == []

    with_event = codec().decode([PRIVMSG, CLEARCHAT], RECEIVED_AT)
    assert [m.type for m in with_event.envelopes] == [MESSAGE, MODERATION]
    assert [type(message) for _, message in with_event.control] == [Clearchat]
    assert with_event.chat_only is False


class _Quiet(EnvelopeBuilder):
    """Publishes no chat (and raises for CLEARCHAT): what a builder may do."""

    def build(self, message, received_at=None, *, ids=None):  # type: ignore[no-untyped-def]
        if type(message) is Privmsg:
            return None
        if type(message) is Clearchat:
            raise RuntimeError("conversion bug")
        return super().build(message, received_at, ids=ids)


def test_an_unpublished_chat_line_goes_to_control_and_a_conversion_error_costs_one_line() -> None:
    decoded = codec(builder=_Quiet()).decode([PRIVMSG, CLEARCHAT, USERNOTICE_NO_ID], 1.0)
    assert [m.type for m in decoded.envelopes] == [NOTIFICATION]
    # The chat line is kept for the client; the CLEARCHAT is both control and an error.
    assert [(line, type(message)) for line, message in decoded.control] == [
        (PRIVMSG, Privmsg),
        (CLEARCHAT, Clearchat),
        (USERNOTICE_NO_ID, Usernotice),
    ]
    assert [(line, str(error)) for line, error in decoded.errors] == [(CLEARCHAT, "conversion bug")]
    assert decoded.chat_only is False


def test_decode_line_appends_one_line_with_the_ids_it_is_given() -> None:
    hex80 = "12" * 40
    envelopes: list[OutboundMessage] = []
    control: list[Any] = []
    errors: list[Any] = []
    codec().decode_line(PRIVMSG_NO_ID, hex80, RECEIVED_AT, 9.0, envelopes, control, errors)
    (message,) = envelopes
    assert message.envelope_id == _uuid4(hex80[0:32])
    assert message.traceparent == f"00-{hex80[32:64]}-{hex80[64:80]}-01"
    assert message.received_at == 9.0
    assert control == errors == []


def test_an_empty_read_decodes_to_nothing() -> None:
    assert codec().decode([], RECEIVED_AT) == Decoded([], [], [], True)


# -- the codec's splitter and make_codec ----------------------------------------------------


def test_the_python_codec_splits_with_the_transports_splitter() -> None:
    python = PythonCodec(EnvelopeBuilder())
    assert python.name == "python"
    assert python.split_lines is transport.split_lines  # not bound to the codec
    assert python.split_lines(b"PING :a\r\nPING :b\n\xff x\r\n") == (
        ["PING :a", "PING :b", "\ufffd x"],
        1,
    )


def test_make_codec_pure_is_the_python_codec() -> None:
    builder = EnvelopeBuilder()
    chosen = make_codec(builder, pure=True)
    assert type(chosen) is PythonCodec
    assert chosen.builder is builder
    assert chosen.name == "python"


def test_make_codec_falls_back_to_python_for_a_builder_the_native_codec_cannot_mirror() -> None:
    builder = _Quiet()
    chosen = make_codec(builder, pure=False)
    assert type(chosen) is PythonCodec
    assert chosen.builder is builder
