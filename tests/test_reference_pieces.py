"""Pieces of the Python reference the native codec mirrors, held to what they stand for:
the UUIDv5 of a Twitch id, the cheer regex, the bounded badge cache, the emote ranges int()
refuses, and ``message_to_outbound``'s metadata (what the NATS headers and the spool use)."""

from __future__ import annotations

import re
import uuid

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingress_egress.envelope import EnvelopeBuilder, encode_envelope
from ingress_egress.envelope.ids import ENVELOPE_NAMESPACE, LineIds, stable_uuid
from ingress_egress.envelope.outbound import message_to_outbound
from ingress_egress.protocol import parse_line
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.twitch.messages import Privmsg, common, from_irc
from ingress_egress.twitch.messages.common import GLOBAL_CHEERMOTES, Cheer, find_cheers
from tests.support.irc_lines import ANY_CHAR, RECEIVED

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=300, deadline=None)
@given(st.text(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), max_size=200))
def test_stable_uuid_is_uuid5(name: str) -> None:
    assert stable_uuid(name) == str(uuid.uuid5(ENVELOPE_NAMESPACE, name))


_ORIGINAL_CHEER = re.compile(r"(?<!\S)(\S+?)(\d+)(?!\S)")


def _original_find_cheers(text: str, prefixes: tuple[str, ...]) -> list[Cheer]:
    known = {prefix.lower() for prefix in prefixes}
    return [
        Cheer(m.group(1), int(m.group(2)), m.start(), m.end() - m.start())
        for m in _ORIGINAL_CHEER.finditer(text)
        if m.group(1).lower() in known and int(m.group(2)) < 1 << 63
    ]


CHEER_TEXT = st.lists(
    st.sampled_from(
        ["cheer", "Cheer", "kappa", "1", "0", "٣", "²", " ", "\t", "\u3000", "\xa0", "x", "\u212a"]
    ),
    max_size=14,
).map("".join)


@PROPERTY
@given(CHEER_TEXT)
def test_find_cheers_matches_the_original_regex(text: str) -> None:
    assert find_cheers(text) == _original_find_cheers(text, GLOBAL_CHEERMOTES)
    assert find_cheers(text, ("kappa", "x")) == _original_find_cheers(text, ("kappa", "x"))


def test_badge_cache_stays_bounded() -> None:
    for i in range(common._CACHE_LIMIT + 50):
        from_irc(parse_line(f"@badges=b{i}/1 :a!a@a PRIVMSG #c :x"))
        assert len(common._badge_cache) <= common._CACHE_LIMIT


def test_emote_digits_int_refuses_are_skipped() -> None:
    # "²" is isdigit() but int() refuses it: the range is skipped (it used to raise).
    line = "@emotes=25:0-4,0-²,1-3/9:" + "1" * 5000 + "-1 :a!a@a PRIVMSG #c :Kappa hi"
    typed = from_irc(parse_line(line))
    assert isinstance(typed, Privmsg)
    assert [(e.id, e.start, e.end) for e in typed.emotes] == [("25", 0, 4), ("25", 1, 3)]


def test_message_to_outbound_is_the_envelope_and_its_metadata() -> None:
    line = TrafficGenerator(seed=31).privmsg("chan")[0]
    hex80 = "ab" * 40
    message = message_to_outbound(
        EnvelopeBuilder(), from_irc(parse_line(line)), RECEIVED, LineIds(hex80), 4.5
    )
    assert message is not None
    envelope = orjson.loads(message.data)
    assert message.data == encode_envelope(envelope)
    assert message.dedup_id == envelope["payload"]["messageId"]
    assert message.type == envelope["type"] == "external.chat.message.v1"
    assert message.ordering_key == envelope["source"]["channelId"]
    assert message.time == envelope["timestamp"] == "2023-11-14T22:13:20.123Z"
    assert message.channel == envelope["source"]["channel"] == "chan"
    assert message.received_at == 4.5
    assert (
        message.traceparent
        == f"00-{'ab' * 16}-{'ab' * 8}-01"
        == f"00-{envelope['traceId']}-{'ab' * 8}-01"
    )
