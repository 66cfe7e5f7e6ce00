"""The C fast path (ingress_egress._native._speedups) against its pure-Python reference.

Every C entry point must return exactly what its Python reference returns: the same
``IrcMessage`` fields, the same ``IrcParseError`` (reason, line, tags), equal typed messages
and byte-identical envelope JSON. The references run through ``_native.set_enabled(False)``
(the C entry points then forward to them) or, for the CLI, with
``INGRESS_EGRESS_PURE_PYTHON=1`` (the extension is not imported at all).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingress_egress import _native
from ingress_egress.envelope import EnvelopeBuilder, encode_envelope
from ingress_egress.envelope.ids import ENVELOPE_NAMESPACE, RandomIds, stable_uuid
from ingress_egress.protocol import IrcMessage, IrcParseError, escape_tag_value, parse_line
from ingress_egress.protocol.irc import _parse_line_py
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.twitch.messages import Privmsg, from_irc
from ingress_egress.twitch.messages.common import Cheer, find_cheers
from tests.support.irc_lines import ANY_CHAR, ODD_TEXT, privmsg_lines, twitch_like_lines
from tests.support.leaks import memory_kept
from tests.support.native import implementation

speedups = _native.speedups
needs_c = pytest.mark.skipif(speedups is None, reason="the C extension is not built")

FIXTURE = Path(__file__).parent / "fixtures" / "twitch_irc_vectors.jsonl"
VECTORS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
FIXTURE_LINES = [row["raw"] for row in VECTORS if row["raw_kind"] == "line"]
FIELDS = ("tags", "prefix", "command", "params", "raw", "nick", "user", "host")


def outcome(work: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or ("error", (type, str, and IrcParseError's reason/line/tags))."""
    try:
        return "ok", work()
    except IrcParseError as error:
        return "error", (type(error), error.args, error.reason, error.line, error.tags)
    except Exception as error:  # compared, not hidden: both paths must fail alike
        return "error", (type(error), str(error))


def fields(msg: IrcMessage) -> tuple[Any, ...]:
    assert type(msg) is IrcMessage
    return tuple(getattr(msg, name) for name in FIELDS)


def twin_builders() -> tuple[EnvelopeBuilder, EnvelopeBuilder]:
    """Two builders that draw the same random ids and see the same clock."""
    block = os.urandom(16 * 256).hex()
    pair = []
    for _ in range(2):
        ids = RandomIds()
        ids._hex, ids._pos = block, 0
        pair.append(EnvelopeBuilder(clock=lambda: 1_700_000_000.123, ids=ids))
    return pair[0], pair[1]


def check_line(line: str) -> None:
    """parse -> typed -> envelope -> JSON agree between C and Python, step by step."""
    with implementation(False):
        want = outcome(lambda: _parse_line_py(line))
    with implementation(True):
        got = outcome(lambda: speedups.parse_line(line))
    if want[0] == "ok":
        assert got[0] == "ok", got
        assert fields(got[1]) == fields(want[1])
        msg = want[1]
    else:
        assert got == want
        return
    with implementation(False):
        typed_py = outcome(lambda: from_irc(msg))
    with implementation(True):
        typed_c = outcome(lambda: from_irc(msg))
    assert typed_c == typed_py
    if typed_py[0] != "ok":
        return
    builder_py, builder_c = twin_builders()
    with implementation(False):
        envelope_py = outcome(lambda: builder_py.build(typed_py[1]))
    with implementation(True):
        envelope_c = outcome(lambda: builder_c.build(typed_c[1]))
    assert envelope_c == envelope_py
    if envelope_py[0] == "ok" and envelope_py[1] is not None:
        assert list(envelope_c[1]) == list(envelope_py[1])
        assert list(envelope_c[1]["payload"]) == list(envelope_py[1]["payload"])
        assert outcome(lambda: encode_envelope(envelope_c[1])) == outcome(
            lambda: encode_envelope(envelope_py[1])
        )


# -- the extension is built and wired ---------------------------------------------------


def test_extension_is_built_and_active() -> None:
    if _native.FORCE_PURE_PYTHON:
        assert speedups is None
        assert parse_line is _parse_line_py
        return
    assert speedups is not None, f"the C extension did not import: {_native.IMPORT_ERROR}"
    # these modules register the last layers
    import ingress_egress.sources.irc.codec
    import ingress_egress.sources.irc.transport  # noqa: F401

    expected = {"protocol", "messages", "ids", "envelope", "outbound", "lines_to_outbound", "lines"}
    assert expected == _native.ACTIVE
    assert parse_line is speedups.parse_line
    assert from_irc is speedups.from_irc
    assert stable_uuid is speedups.stable_uuid


def test_pure_python_env_var_skips_the_extension() -> None:
    code = (
        "from ingress_egress import _native\n"
        "from ingress_egress.protocol import parse_line\n"
        "from ingress_egress.envelope import EnvelopeBuilder\n"
        "from ingress_egress.protocol.irc import _parse_line_py\n"
        "assert _native.speedups is None and not _native.ACTIVE\n"
        "assert parse_line is _parse_line_py\n"
        "assert type(EnvelopeBuilder.__dict__['build']).__name__ == 'function'\n"
        "print('pure')\n"
    )
    env = {**os.environ, "INGRESS_EGRESS_PURE_PYTHON": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pure"


# -- every fixture line, and the sample/normalize assertions under both paths ------------


@needs_c
@pytest.mark.parametrize("line", FIXTURE_LINES)
def test_fixture_line_agrees(line: str) -> None:
    check_line(line)
    check_line(line + "\r\n")


# -- property tests ----------------------------------------------------------------------

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_c
@PROPERTY
@given(ODD_TEXT)
@example("")
@example("@")
@example("@a=b")
@example(": CMD")
@example(":prefix")
@example("@a=b   ")
@example("\ud800")
@example("@a=\\")
@example("PRIVMSG")
def test_any_text_agrees(text: str) -> None:
    check_line(text)


@needs_c
@PROPERTY
@given(twitch_like_lines())
def test_twitch_like_lines_agree(line: str) -> None:
    check_line(line)


@needs_c
@PROPERTY
@given(privmsg_lines())
def test_privmsg_lines_agree(line: str) -> None:
    check_line(line)


# Values at the edges of what the typed fast path interprets, per tag.
EDGES = {
    "display-name": ["", " ", "  ", " x", "x ", "\u3000x\u3000", "\xa0", "Ünï ", "a b"],
    "color": [
        "#1e90ff",
        "#1E90FF",
        "#1e90f",
        "#1e90ffa",
        "1e90ff#",
        "#1e90fg",
        "#\uff11\uff12\uff13\uff14\uff15\uff16",
    ],
    "bits": [
        *["", "0", "100", " 100", "+1", "1_0", "٣", "²", "9" * 18, "9" * 19, "9" * 5000, "x"],
        *[str(1 << 63), str((1 << 63) - 1), str(1 << 64), str(-(1 << 63)), str(-(1 << 63) - 1)],
    ],
    "tmi-sent-ts": [
        *["-1", "0", "253402300799999", "253402300800000", "9" * 25, "1.5"],
        *[str(1 << 64), " " + str(1 << 63)],
    ],
    "emotes": [
        "",
        "25:0-4",
        "25:4-0",
        "25:0-4,6-10/1:2-3",
        "25:",
        ":0-1",
        "25:-1",
        "25:1-",
        "25:0-4:5",
        "1:0-" + "9" * 18,
        "1:0-" + "9" * 19,
        "1:" + "9" * 19 + "-" + "9" * 19,
        "1:²-3",
        "1:٣-4",
        "a:0-0/a:0-0",
        "/",
        "25:0-4/",
        "1:0-9999999,0-0",
    ],
    "badges": ["", ",", "/", "a/", "/1", "a/b/c", "subscriber/12,vip/1,,broadcaster/1"],
    "badge-info": ["", "subscriber/0", "x"],
    "mod": ["1", "0", "", "01", " 1"],
    "reply-parent-msg-id": ["", "x"],
    "reply-parent-display-name": ["", " x ", "\u3000"],
    "source-room-id": ["", "1"],
    "id": ["", "x", "é", "🎉", "\ud800"],
}
EDGE_TEXTS = ["", "\x01ACTION", "\x01ACTION\x01", "\x01ACTION \x01", "\x01ACTIONs", "🎉" * 3]
EDGE_TEXTS += [f"Cheer{1 << 63} cheer1", f"cheer{(1 << 63) - 1}", "Cheer" + "9" * 5000]


# Chat events without a channel: an error (IrcParseError) on both paths, never an envelope.
NO_CHANNEL = [
    "@id=1 :a!a@a PRIVMSG",
    "@id=1 :a!a@a PRIVMSG # :hash only",
    "@id=1 :a!a@a PRIVMSG #",
    ":tmi.twitch.tv CLEARCHAT",
    "@room-id=1 :tmi.twitch.tv ROOMSTATE #",
    "@msg-id=sub :tmi.twitch.tv USERNOTICE # :x",
]


@needs_c
@pytest.mark.parametrize("line", NO_CHANNEL)
def test_chat_events_without_a_channel_fail_alike(line: str) -> None:
    check_line(line)
    for native in (False, True):
        with implementation(native), pytest.raises(IrcParseError, match="without a channel"):
            from_irc(parse_line(line))


@needs_c
@pytest.mark.parametrize(
    ("key", "value"), [(key, value) for key, values in EDGES.items() for value in values]
)
def test_edge_values_agree(key: str, value: str) -> None:
    for text in EDGE_TEXTS:
        check_line(
            f"@{key}={escape_tag_value(value)};bits=1;id=1 :Nick!n@h PRIVMSG #Chan :{text} 🎉"
        )
        check_line(f"@{key}={escape_tag_value(value)} :srv.tv PRIVMSG #c :{text}")


PREFIX_EDGES = [
    "a", "a.b", "a!a", "a!a@h", "a!b@h", "ab!abc@h", "a!a!@h", "ab!ab!@h", "a!@h", "!a@h",
    "@h", "a@", "a@b!c", "a!a@a!a", "a.b!c", "a.b@c", "!", "@", "é!é@é", "🎉!🎉@h.tv",
]  # fmt: skip


@needs_c
@pytest.mark.parametrize("prefix", PREFIX_EDGES)
def test_prefix_edges_agree(prefix: str) -> None:
    check_line(f":{prefix} PRIVMSG #c :hi")
    check_line(f"@id=1 :{prefix} PRIVMSG #c :🎉")
    check_line(f":{prefix}  001 me :hi")


@needs_c
def test_badge_cache_stays_bounded() -> None:
    from ingress_egress.twitch.messages import common

    with implementation(True):
        for i in range(common._CACHE_LIMIT + 50):
            from_irc(parse_line(f"@badges=b{i}/1 :a!a@a PRIVMSG #c :x"))
            assert len(common._badge_cache) <= common._CACHE_LIMIT


@needs_c
@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_real_lines_agree(data: st.DataObject) -> None:
    line = data.draw(st.sampled_from(CORPUS))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(line)))
        cut = data.draw(st.integers(0, 3))
        line = line[:at] + data.draw(st.text(ANY_CHAR, max_size=3)) + line[at + cut :]
    check_line(line)


def _corpus(count: int) -> list[str]:
    generator = TrafficGenerator(seed=11)
    return [generator.privmsg(f"chan{i % 7}")[0] for i in range(count)]


CORPUS = _corpus(300)


@needs_c
def test_generated_traffic_agrees() -> None:
    for line in CORPUS:
        check_line(line)


@needs_c
def test_long_and_wide_lines_agree() -> None:
    base = CORPUS[0]
    for text in ("x" * 100_000, "🎉" * 20_000, "\x00" * 1000, "\ud800" * 500, "é" * 70_000):
        check_line(base + text)
        check_line("@" + "a=" + text + " PRIVMSG #c :" + text)
    check_line("@" + ";".join(f"k{i}=v\\s{i}" for i in range(5000)) + " PRIVMSG #c :x")


# -- pieces --------------------------------------------------------------------------------


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.text(ANY_CHAR.filter(lambda c: not 0xD800 <= ord(c) <= 0xDFFF), max_size=200))
def test_stable_uuid_is_uuid5(name: str) -> None:
    assert speedups.stable_uuid(name) == str(uuid.uuid5(ENVELOPE_NAMESPACE, name))


@needs_c
def test_stable_uuid_of_a_surrogate_fails_like_python() -> None:
    with implementation(False):
        want = outcome(lambda: stable_uuid("twitch:\ud800"))
    assert outcome(lambda: speedups.stable_uuid("twitch:\ud800")) == want
    assert want[0] == "error"


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_sha1_block_functions_agree(data: bytes) -> None:
    import hashlib

    portable, cpu = speedups.sha1_variants(data)
    assert portable == hashlib.sha1(data).digest()
    assert cpu is None or cpu == portable


_ORIGINAL_CHEER = re.compile(r"(?<!\S)(\S+?)(\d+)(?!\S)")


def _original_find_cheers(text: str, prefixes: tuple[str, ...]) -> list[Cheer]:
    known = {prefix.lower() for prefix in prefixes}
    return [
        Cheer(m.group(1), int(m.group(2)), m.start(), m.end() - m.start())
        for m in _ORIGINAL_CHEER.finditer(text)
        if m.group(1).lower() in known
    ]


CHEER_TEXT = st.lists(
    st.sampled_from(
        ["cheer", "Cheer", "kappa", "1", "0", "٣", "²", " ", "\t", "\u3000", "\xa0", "x"]
    ),
    max_size=14,
).map("".join)


@PROPERTY
@given(CHEER_TEXT)
def test_find_cheers_matches_the_original_regex(text: str) -> None:
    from ingress_egress.twitch.messages.common import GLOBAL_CHEERMOTES

    assert find_cheers(text) == _original_find_cheers(text, GLOBAL_CHEERMOTES)
    assert find_cheers(text, ("kappa", "x")) == _original_find_cheers(text, ("kappa", "x"))


@needs_c
def test_builder_keywords_subclass_and_received_at() -> None:
    msg = parse_line(CORPUS[1])
    typed = from_irc(msg)
    assert type(typed) is Privmsg
    builder_py, builder_c = twin_builders()
    with implementation(False):
        want = builder_py.build(message=typed, received_at=1_600_000_000.5)
    with implementation(True):
        got = builder_c.build(message=typed, received_at=1_600_000_000.5)
    assert orjson.dumps(got) == orjson.dumps(want)
    assert got["timestamp"] == "2020-09-13T12:26:40.500Z"
    with pytest.raises(TypeError):
        builder_c.build()
    with pytest.raises(TypeError):
        builder_c.build(typed, 1.0, 2.0)
    with pytest.raises(TypeError):
        builder_c.build(typed, when=1.0)

    class Custom(EnvelopeBuilder):  # subclasses keep their overrides
        def _message(self, msg: Privmsg, stamp: str) -> dict[str, Any]:
            return {"custom": stamp}

    assert Custom(clock=lambda: 0.0).build(typed) == {"custom": "1970-01-01T00:00:00.000Z"}


@needs_c
def test_privmsg_from_irc_classmethod_and_subclass() -> None:
    msg = parse_line(CORPUS[2])
    with implementation(False):
        want = Privmsg.from_irc(msg)
    assert Privmsg.from_irc(msg) == want

    class Sub(Privmsg):
        __slots__ = ()

    assert type(Sub.from_irc(msg)) is Sub


@needs_c
def test_emote_digits_int_refuses_are_skipped() -> None:
    # "²" is isdigit() but int() refuses it: the range is skipped (it used to raise).
    line = "@emotes=25:0-4,0-²,1-3/9:" + "1" * 5000 + "-1 :a!a@a PRIVMSG #c :Kappa hi"
    check_line(line)
    assert [(e.id, e.start, e.end) for e in from_irc(parse_line(line)).emotes] == [
        ("25", 0, 4),
        ("25", 1, 3),
    ]


# -- no leaks, no unbounded caches -----------------------------------------------------


@needs_c
def test_no_leak_on_the_hot_path() -> None:
    lines = [*CORPUS, "@a=b", "", ":x", "@bad\\ PRIVMSG #c :\ud800", "PRIVMSG #c :x\x00y"]
    builder = EnvelopeBuilder()

    def run(rounds: int) -> None:
        for _ in range(rounds):
            for line in lines:
                try:
                    envelope = builder.build(from_irc(parse_line(line)))
                    if envelope is not None:
                        encode_envelope(envelope)
                except (IrcParseError, orjson.JSONEncodeError):
                    pass

    with implementation(True):
        grown = memory_kept(run, rounds=20)
    assert grown < 64 * 1024, f"{grown} bytes kept after 20 rounds of {len(lines)} lines"
