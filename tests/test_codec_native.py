"""The native IRC codec against the Python codec, its reference.

``NativeCodec`` converts a chat line of the common shape in C (``DirectPath``: the raw line
to its ``OutboundMessage``, the envelope JSON written from the line's spans) and hands every
other line to a ``PythonCodec``. Both get the same ids (``random_hex`` from one seed each),
so for the same lines they must return equal results: the same envelopes (``data`` byte for
byte), the same control messages and errors, in the same order. Declining is the C's way out
of any shape it does not mirror; the tests check that the common shapes are taken.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import sys
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingress_egress import _native
from ingress_egress.config import Settings
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.envelope.ids import LineIds, stable_uuid
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import PythonCodec, make_codec
from tests.fuzz.both import comparable
from tests.support.irc_lines import (
    FIXTURE_LINES,
    MUTATION,
    RECEIVED,
    direct_shaped_lines,
    privmsg_lines,
    rich_privmsgs,
    twitch_like_lines,
)
from tests.support.leaks import memory_kept

speedups = _native.speedups
pytestmark = pytest.mark.skipif(speedups is None, reason="the C extension is not built")
if speedups is not None:
    from ingress_egress.sources.irc.codec.native import NativeCodec

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _corpus(count: int, seed: int) -> list[str]:
    generator = TrafficGenerator(seed=seed)
    return [generator.privmsg(f"chan{i % 5}")[0] for i in range(count)]


CORPUS = _corpus(240, seed=31)


def seeded(seed: int) -> Any:
    stream = random.Random(seed)
    return lambda lines: stream.randbytes(40 * lines).hex()


def pair(
    seed: int = 5, builder: dict[str, Any] | None = None, self_user_id: str | None = None
) -> tuple[Any, Any]:
    """(Python codec, native codec), same ids, same monotonic clock, twin builders, the
    same bot (``self_user_id``)."""
    options = builder or {}
    python = PythonCodec(EnvelopeBuilder(**options), random_hex=seeded(seed), monotonic=lambda: 7.5)
    native = NativeCodec(EnvelopeBuilder(**options), random_hex=seeded(seed), monotonic=lambda: 7.5)
    python.set_self_user_id(self_user_id)
    native.set_self_user_id(self_user_id)
    return python, native


def view(decoded: Any) -> Any:
    return comparable(
        (
            decoded.envelopes,
            decoded.control,
            decoded.errors,
            decoded.chat_only,
            decoded.self_messages,
        )
    )


def check(lines: list[str], received_at: float = RECEIVED, codecs: Any = None) -> int:
    """Both codecs agree on ``lines``; returns how many lines the direct path declined."""
    python, native = codecs or pair()
    declined = native.declined
    want = python.decode(list(lines), received_at)
    got = native.decode(list(lines), received_at)
    assert view(got) == view(want)
    for old, new in zip(want.envelopes, got.envelopes, strict=True):
        assert type(new) is OutboundMessage and new.data == old.data
    return native.declined - declined


# -- the common shapes are taken, and agree ---------------------------------------------------


def test_simulator_traffic_takes_the_direct_path_in_read_sized_batches() -> None:
    codecs = pair()
    lines = _corpus(2000, seed=3)
    declined = sum(check(lines[i : i + 50], codecs=codecs) for i in range(0, len(lines), 50))
    assert declined == 0
    assert codecs[1].lines == len(lines)


def test_fixture_lines_agree_alone_and_as_one_read() -> None:
    codecs = pair()
    for line in FIXTURE_LINES:
        check([line], codecs=codecs)
    declined = check(FIXTURE_LINES, codecs=codecs)
    chat = [line for line in FIXTURE_LINES if " PRIVMSG #" in line]
    taken = len(FIXTURE_LINES) - declined  # only chat lines can be taken
    assert len(chat) - 3 <= taken <= len(chat)  # 3 odd ones declined (shared chat, ...)


def test_an_all_chat_read_is_chat_only_and_a_mixed_one_is_not() -> None:
    python, native = pair()
    read = CORPUS[:10]
    assert native.decode(read, RECEIVED).chat_only and python.decode(read, RECEIVED).chat_only
    mixed = [*read, "PING :tmi.twitch.tv"]
    assert not native.decode(mixed, RECEIVED).chat_only
    assert native.decode([], RECEIVED) == python.decode([], RECEIVED)


def test_each_line_gets_its_own_slice_of_the_reads_ids() -> None:
    hexes = random.Random(9).randbytes(40 * 3).hex()
    codec = NativeCodec(
        EnvelopeBuilder(), random_hex=lambda n: hexes[: 80 * n], monotonic=lambda: 1.0
    )
    no_id = "@badges=;color=;display-name=A;emotes=;room-id=1;user-id=2 :a!a@a PRIVMSG #c :hi"
    lines = [CORPUS[0], no_id, CORPUS[1]]
    envelopes = codec.decode(lines, RECEIVED).envelopes
    for index, outbound in enumerate(envelopes):
        ids = LineIds(hexes[80 * index : 80 * index + 80])
        body = orjson.loads(outbound.data)
        assert outbound.traceparent == f"00-{ids.trace_id()}-{ids.span_id()}-01"
        assert body["traceId"] == ids.trace_id()
    assert envelopes[1].envelope_id == LineIds(hexes[80:160]).uuid4() == envelopes[1].dedup_id
    message_id = orjson.loads(envelopes[0].data)["payload"]["messageId"]
    assert envelopes[0].envelope_id == stable_uuid(f"twitch:{message_id}")
    assert envelopes[0].dedup_id == message_id


@pytest.mark.parametrize("head", ["0" * 64, "f" * 32 + "0" * 32])
def test_an_all_zero_trace_id_becomes_one_on_both(head: str) -> None:
    def zeros(lines: int) -> str:
        return (head + "a" * 16) * lines

    python = PythonCodec(EnvelopeBuilder(), random_hex=zeros, monotonic=lambda: 1.0)
    native = NativeCodec(EnvelopeBuilder(), random_hex=zeros, monotonic=lambda: 1.0)
    check(CORPUS[:3], codecs=(python, native))
    outbound = native.decode(CORPUS[:1], RECEIVED).envelopes[0]
    assert outbound.traceparent == f"00-{'0' * 31}1-{'a' * 16}-01"


# -- what the direct path declines goes to the Python codec --------------------------------------

LINE = CORPUS[0]
TAGS, REST = LINE.split(" ", 1)
PREFIX, TEXT = REST.split(" :", 1)
DECLINED = {
    "shared chat": f"{TAGS};source-room-id=1;source-id=x {REST}",
    "spaces around the display name": f"{TAGS.replace('display-name=', 'display-name= ')} {REST}",
    "an escape in an interpreted tag": f"{TAGS};msg-id=a\\sb {REST}",
    "a tag twice": f"{TAGS};mod=1 {REST}",
    "a badge twice": f"@badges=vip/1,vip/2;id=1 :{PREFIX.split(' ', 1)[0][1:]} PRIVMSG #c :x",
    "a non-ASCII nick": f"{TAGS} :ñ!ñ@ñ PRIVMSG #c :hi",
    "tmi-sent-ts beyond 18 digits": f"{TAGS};tmi-sent-ts=1{'0' * 19} {REST}".replace(
        "tmi-sent-ts=", "x-ts=", 1
    ),
    "a lone surrogate": f"{LINE}\ud800",
    "a cheer in other digits": f"{TAGS};bits=5 {PREFIX} :cheer٣",
    "a non-ASCII message id": LINE.replace(";id=", ";id=é", 1),
    "not a PRIVMSG": "@badge-info=;login=a :tmi.twitch.tv USERNOTICE #c :hi",
    "no prefix": f"{TAGS} PRIVMSG #c :hi",
    "an empty channel": f"{TAGS} {PREFIX.rsplit(' ', 1)[0]} # :hi",
}


@pytest.mark.parametrize("name", sorted(DECLINED))
def test_declined_shapes_agree(name: str) -> None:
    assert check([DECLINED[name], LINE]) == 1


def test_a_receipt_time_an_envelope_cannot_say_is_declined() -> None:
    for received_at in (-1.0, 253_402_300_800.0, float("nan"), float("inf")):
        try:
            want = PythonCodec(EnvelopeBuilder()).decode(CORPUS[:1], received_at)
        except (ValueError, OverflowError, OSError) as error:
            python_error: Exception | None = error
        else:
            python_error = None
        codec = NativeCodec(EnvelopeBuilder())
        if python_error is not None:
            with pytest.raises(type(python_error)):
                codec.decode(CORPUS[:1], received_at)
        else:
            assert len(codec.decode(CORPUS[:1], received_at).envelopes) == len(want.envelopes)
        assert codec.declined == 1


def test_cheer_amounts_beyond_64_bits_are_text_on_both() -> None:
    line = f"{TAGS};bits=5 {PREFIX} :Cheer{'9' * 30} cheer{'9' * 19} cheer100 Cheer0001"
    assert check([line]) == 0
    cheers = orjson.loads(pair()[1].decode([line], RECEIVED).envelopes[0].data)["payload"]
    assert [(c["prefix"], c["amount"]) for c in cheers["cheers"]] == [("cheer", 100), ("Cheer", 1)]


def test_non_str_lines_are_errors_on_both() -> None:
    check([LINE, b"PRIVMSG #c :x", None, LINE])  # type: ignore[list-item]


# -- the bot's own lines: declined by the direct path, isSelf from the Python codec -----------


def user_id_of(line: str) -> str:
    return line.split(";user-id=", 1)[1].split(";", 1)[0].split(" ", 1)[0]


BOT = user_id_of(CORPUS[3])


def as_bot(line: str, user_id: str = BOT) -> str:
    """``line`` as the bot would have sent it: its user-id replaced."""
    return line.replace(f";user-id={user_id_of(line)}", f";user-id={user_id}", 1)


def payloads(decoded: Any) -> list[dict[str, Any]]:
    return [orjson.loads(outbound.data)["payload"] for outbound in decoded.envelopes]


def test_the_bots_own_lines_are_declined_and_marked_the_same_on_both() -> None:
    lines = [as_bot(line) if i % 4 == 1 else line for i, line in enumerate(CORPUS[:40])]
    own = [i for i, line in enumerate(lines) if user_id_of(line) == BOT]
    python, native = pair(self_user_id=BOT)
    assert check(lines, codecs=(python, native)) == len(own) > 5
    decoded = native.decode(lines, RECEIVED)
    assert [i for i, p in enumerate(payloads(decoded)) if p.get("isSelf")] == own
    assert all(p["isSelf"] is True for p in payloads(decoded) if "isSelf" in p)
    assert decoded.chat_only  # a self line is still chat
    assert decoded.self_messages == tuple(
        (line.split(" PRIVMSG #", 1)[1].split(" ", 1)[0], line.split(";id=", 1)[1].split(";")[0])
        for line in (lines[i] for i in own)
    )


def test_without_a_self_user_id_nothing_is_declined_or_marked() -> None:
    lines = [as_bot(line) for line in CORPUS[:10]]
    python, native = pair()
    assert check(lines, codecs=(python, native)) == 0
    decoded = native.decode(lines, RECEIVED)
    python.decode(lines, RECEIVED)  # the twins' id streams stay in step
    assert decoded.self_messages == () and not any("isSelf" in p for p in payloads(decoded))
    native.set_self_user_id(BOT)
    python.set_self_user_id(BOT)
    assert check(lines, codecs=(python, native)) == 10
    native.set_self_user_id(None)
    python.set_self_user_id("")
    assert check(lines, codecs=(python, native)) == 0


def test_only_chat_messages_are_the_bots_own() -> None:
    """A USERNOTICE or CLEARCHAT naming the bot is no self message (docs/envelope.md)."""
    notice = f"@user-id={BOT};login=bot;id=n1;msg-id=announcement :tmi.twitch.tv USERNOTICE #c :hi"
    clear = f"@room-id=1;target-user-id={BOT};tmi-sent-ts=1 :tmi.twitch.tv CLEARCHAT #c :bot"
    python, native = pair(self_user_id=BOT)
    assert check([notice, clear, as_bot(LINE)], codecs=(python, native)) == 3
    decoded = native.decode([notice, clear, as_bot(LINE)], RECEIVED)
    assert [p.get("isSelf") for p in payloads(decoded)] == [None, None, True]
    assert len(decoded.self_messages) == 1


@pytest.mark.parametrize(
    ("user_id", "own"),
    [
        (BOT, True),
        (BOT + "0", False),
        ("0" + BOT, False),
        (BOT[:-1], False),
        ("", False),
        (BOT[:3] + "\\\\" + BOT[3:], False),  # an escaped backslash: not the id
    ],
)
def test_near_misses_are_not_the_bot(user_id: str, own: bool) -> None:
    line = as_bot(LINE, user_id)
    python, native = pair(self_user_id=BOT)
    check([line], codecs=(python, native))
    assert bool(native.decode([line], RECEIVED).self_messages) is own


def test_an_escaped_user_id_that_unescapes_to_the_bots_is_the_bot_on_both() -> None:
    """IRCv3 drops a backslash before an ordinary character: ``111\\48817`` is the id."""
    line = as_bot(LINE, BOT[:3] + "\\" + BOT[3:])
    python, native = pair(self_user_id=BOT)
    assert check([line], codecs=(python, native)) == 1
    assert payloads(native.decode([line], RECEIVED))[0]["isSelf"] is True


def test_a_wide_line_of_the_bot_is_declined_and_one_of_another_taken() -> None:
    """Non-ASCII text makes the line a 2- or 4-byte str: the id is compared per code point."""
    for text in ("草", "🎉 hi"):
        own = f"{as_bot(LINE).rsplit(' :', 1)[0]} :{text}"
        other = f"{LINE.rsplit(' :', 1)[0]} :{text}"
        python, native = pair(self_user_id=BOT)
        assert check([own, other], codecs=(python, native)) == 1
        assert [p.get("isSelf") for p in payloads(native.decode([own, other], RECEIVED))] == [
            True,
            None,
        ]


def test_a_self_user_id_set_on_the_builder_is_followed_by_the_native_codec() -> None:
    python, native = pair()
    native.builder.set_self_user_id(BOT)
    python.builder.set_self_user_id(BOT)
    assert check([as_bot(LINE)], codecs=(python, native)) == 1


def test_a_self_user_id_is_twitch_shaped() -> None:
    python, native = pair()
    for bad in ("abc", "1" * 33, "١٢", " 1"):
        with pytest.raises(ValueError):
            native.set_self_user_id(bad)
        with pytest.raises(ValueError):
            python.set_self_user_id(bad)
    assert native.builder.self_user_id is None
    assert speedups is not None
    direct = speedups.DirectPath(OutboundMessage, "irc", "t", "f", bytes(16), [])
    for wrong in (1, b"12", "é", "1" * 33):
        with pytest.raises(ValueError):
            direct.set_self_id(wrong)
    direct.set_self_id(BOT)
    assert direct.encode([as_bot(LINE)], "a" * 80, RECEIVED, 1.0) == ([None], 1)
    direct.set_self_id(None)
    assert direct.encode([as_bot(LINE)], "a" * 80, RECEIVED, 1.0)[1] == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(direct_shaped_lines(), rich_privmsgs(), st.sampled_from(CORPUS)),
            st.booleans(),
        ),
        max_size=10,
    )
)
def test_batches_with_the_bots_lines_agree(lines: list[tuple[str, bool]]) -> None:
    batch = [as_bot(line) if own and ";user-id=" in line else line for line, own in lines]
    check(batch, codecs=pair(self_user_id=BOT))


# -- choosing and building the codec ------------------------------------------------------


def test_make_codec_chooses_the_native_codec_unless_told_not_to() -> None:
    assert make_codec(EnvelopeBuilder()).name == "native"
    assert make_codec(EnvelopeBuilder(), pure=True).name == "python"

    class Custom(EnvelopeBuilder):
        pass

    with pytest.raises(TypeError):
        NativeCodec(Custom())
    assert make_codec(Custom()).name == "python"  # a subclass may build chat differently


def test_the_pure_python_switch_is_a_setting_the_codec_choice_follows() -> None:
    for value, pure in (("1", True), ("yes", True), ("0", False), ("", False)):
        configured = Settings.from_env({"INGRESS_EGRESS_PURE_PYTHON": value})
        assert configured.runtime.pure_python is pure
        codec = make_codec(EnvelopeBuilder(), pure=configured.runtime.pure_python)
        assert codec.name == ("python" if pure else "native")


def test_direct_path_refuses_what_it_cannot_mirror() -> None:
    assert speedups is not None
    args = ("irc", "t", "f", bytes(16), ["cheer"])

    @dataclasses.dataclass
    class NoSlots:
        data: bytes

    with pytest.raises(TypeError):
        speedups.DirectPath(NoSlots, *args)
    with pytest.raises(ValueError):
        speedups.DirectPath(OutboundMessage, "irc", "t", "f", bytes(15), [])
    with pytest.raises(ValueError):
        speedups.DirectPath(OutboundMessage, "irc", "t", "f", bytes(16), ["Cheer"])
    with pytest.raises(TypeError):
        speedups.DirectPath(OutboundMessage, "irç", "t", "f", bytes(16), [])
    direct = speedups.DirectPath(OutboundMessage, *args)
    with pytest.raises(ValueError):
        direct.encode([LINE], "ab" * 39, RECEIVED, 1.0)  # 78 hex characters for one line
    with pytest.raises(TypeError):
        direct.encode(iter([LINE]), "a" * 80, RECEIVED, 1.0)
    assert direct.encode([LINE], "z" * 80, RECEIVED, 1.0) == ([None], 1)  # not hex: declined
    assert direct.encode([LINE], "a" * 80, None, 1.0) == ([None], 1)  # no receipt time
    (outbound,), declined = direct.encode((LINE,), "a" * 80, RECEIVED, 1.0)
    assert declined == 0 and outbound.seq == -1 and outbound.received_at == 1.0
    assert outbound.type == "t"


# -- generated lines ------------------------------------------------------------------------


@PROPERTY
@given(direct_shaped_lines())
@example("@id=1;badges=vip/1,vip/2 :A!a@a PRIVMSG #C :x")
@example('@id=;room-id=1;emotes=25:0-0,0-0/26:0-0 :a!a@a PRIVMSG #c :\x00\x1f"\\')
@example("@=x;;a :a!a@a PRIVMSG #c :\x01ACTION\x01")
@example('@k\\ey=1;a"b=\\s;id=x :a!a@a PRIVMSG #c :🎉')
@example("@k\\ey=1;id=x :a!a@a PRIVMSG #c :草")
@example("@badges=a/1/2,/3,b,;id=x :a!a@a PRIVMSG #c :x")
@example("@bits=100;id=x :a!a@a PRIVMSG #c :\u212aappa100 cheer1\u3000Cheer2 1 11")
def test_direct_shaped_lines_agree(line: str) -> None:
    check([line])


@PROPERTY
@given(rich_privmsgs())
def test_rich_privmsg_lines_agree(line: str) -> None:
    check([line])


@PROPERTY
@given(privmsg_lines())
def test_edgy_privmsg_lines_agree(line: str) -> None:
    check([line])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(twitch_like_lines())
def test_any_line_agrees(line: str) -> None:
    check([line])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            direct_shaped_lines(), rich_privmsgs(), twitch_like_lines(), st.sampled_from(CORPUS)
        ),
        max_size=10,
    ),
    st.floats(min_value=0, max_value=4e12, allow_nan=False),
)
def test_mixed_batches_agree(lines: list[str], received_at: float) -> None:
    check(lines, received_at)


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


def test_no_leak() -> None:
    """Taken, declined and failing lines keep no memory, and no reference to a line."""
    odd = [*DECLINED.values(), "@bad\\", "PING :tmi.twitch.tv", ""]
    batch = [*CORPUS[:40], *odd]
    codec = NativeCodec(EnvelopeBuilder())

    def go(rounds: int) -> None:
        for _ in range(rounds):
            codec.decode(batch, RECEIVED)

    grown = memory_kept(go, rounds=40)
    assert grown < 64 * 1024, f"{grown} bytes kept"
    line = CORPUS[5]
    gc.collect()  # an error's traceback refers to the frame that holds it: a cycle
    refs = sys.getrefcount(line)
    go(5)
    gc.collect()
    assert sys.getrefcount(line) == refs
