"""Hostile lines from a (simulated) Twitch server: a read never loses its valid lines
because one line in it is bad, on both codecs, and every bad line is a clear, counted error.

Each read goes through each codec (the native one where the C extension is built, and the
Python one), through the real read path (the simulator over a real socket, the service's
pool and pipeline) with each codec, and through ``ingress-egress normalize`` as a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tracemalloc

import orjson
import pytest

from ingress_egress import _native
from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings, parse_irc_url
from ingress_egress.envelope import EnvelopeBuilder, OutboundMessage
from ingress_egress.protocol import IrcParseError
from ingress_egress.protocol.connection import TransportClosed
from ingress_egress.simulator import ChatSimulator
from ingress_egress.sources.irc.codec import IrcCodec, PythonCodec, make_codec
from ingress_egress.sources.irc.transport import (
    MAX_INCOMING_LINE_BYTES,
    LineTransport,
    open_transport,
)
from tests.support.service import eventually, get, running, settings_for

pytestmark = pytest.mark.timeout(120)
HUGE = str(1 << 64)  # 18446744073709551616: one more than any 64-bit integer holds


def privmsg(n: int, text: str, extra: str = "") -> str:
    return (
        f"@badges=;color=;display-name=A;emotes=;id=aaaaaaaa-0000-4000-8000-{n:012d};"
        f"mod=0;room-id=5;subscriber=0;tmi-sent-ts=1700000000000;user-id=9{extra} "
        f":a!a@a.tmi.twitch.tv PRIVMSG #one :{text}"
    )


# The read, written in one send: good lines around numbers beyond 64 bits and a
# PRIVMSG without a channel.
READ = [
    privmsg(1, "good-1"),
    f"@ban-duration={HUGE};room-id=5;target-user-id=7;tmi-sent-ts=1700000000000 "
    ":tmi.twitch.tv CLEARCHAT #one :victim",
    privmsg(2, "good-2"),
    privmsg(3, "Cheer1 good-3", f";bits={HUGE}"),
    f"@room-id=5;slow={HUGE} :tmi.twitch.tv ROOMSTATE #one",
    privmsg(4, "good-4"),
    f"@room-id=5;followers-only=-{HUGE} :tmi.twitch.tv ROOMSTATE #one",
    privmsg(5, f"good-5 Cheer{HUGE}", ";bits=1"),  # a cheer amount beyond 64 bits: just text
    privmsg(6, "no channel").replace("PRIVMSG #one", "PRIVMSG #"),
    privmsg(7, "good-7"),
]
BAD = {
    1: "ban-duration: number beyond 64 bits",
    3: "bits: number beyond 64 bits",
    4: "slow: number beyond 64 bits",
    6: "followers-only: number beyond 64 bits",
    8: "PRIVMSG without a channel",
}
GOOD_TEXTS = ["good-1", "good-2", "good-4", f"good-5 Cheer{HUGE}", "good-7"]

# The native codec wherever the C extension is loaded (INGRESS_EGRESS_PURE_PYTHON unset).
CODECS = ["native", "python"] if _native.speedups is not None else ["python"]


def new_codec(name: str, builder: EnvelopeBuilder | None = None) -> IrcCodec:
    """The codec ``name``, built directly (no fallback: a native codec that cannot be built
    fails the test)."""
    builder = builder or EnvelopeBuilder()
    if name == "python":
        return PythonCodec(builder)
    from ingress_egress.sources.irc.codec.native import NativeCodec

    return NativeCodec(builder)


@pytest.mark.parametrize("name", CODECS)
def test_each_bad_line_is_its_own_error_and_the_rest_converts(name: str) -> None:
    decoded = new_codec(name).decode(READ, 1.7e9)
    assert [line for line, _ in decoded.errors] == [READ[index] for index in sorted(BAD)]
    for _, error in decoded.errors:
        assert isinstance(error, IrcParseError), error
    assert [error.reason for _, error in decoded.errors] == [BAD[i] for i in sorted(BAD)]
    assert decoded.control == []
    assert not decoded.chat_only
    texts = [orjson.loads(m.data)["payload"]["text"] for m in decoded.envelopes]
    assert texts == GOOD_TEXTS
    cheered = decoded.envelopes[3]
    assert isinstance(cheered, OutboundMessage)
    assert orjson.loads(cheered.data)["payload"]["cheers"] == []


@pytest.mark.parametrize("name", CODECS)
async def test_a_read_keeps_its_valid_lines_through_the_real_read_path(name: str) -> None:
    # The composition root passes the switch (INGRESS_EGRESS_PURE_PYTHON) to make_codec.
    publisher = MemoryPublisher()
    base = Settings.defaults(
        message_bus_driver="memory", ingress_egress_pure_python=name == "python"
    )
    async with ChatSimulator(replay_lines=READ) as sim:
        settings = settings_for(base, sim.port, ("one",))
        async with running(settings, publisher=publisher) as service:
            assert service.codec is not None and service.codec.name == name
            await eventually(lambda: service.counters.parse_errors >= len(BAD), what="errors")
            await eventually(
                lambda: service.counters.published >= len(GOOD_TEXTS), what="good lines"
            )
            assert service.counters.parse_errors == len(BAD)
            assert service.state.connected
            reasons = {e["message"] for e in service.errors.entries}
            assert set(BAD.values()) <= reasons
    texts = [
        orjson.loads(m.data)["payload"]["text"]
        for m in publisher.messages
        if m.type == "external.chat.message.v1"
    ]
    assert texts == GOOD_TEXTS


@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "python"])
def test_normalize_reports_each_bad_line_and_goes_on(pure: str) -> None:
    env = {**os.environ, "INGRESS_EGRESS_PURE_PYTHON": pure}
    done = subprocess.run(
        [sys.executable, "-m", "ingress_egress", "normalize"],
        input="\n".join(READ).encode() + b"\n",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == len(READ)
    for index, record in enumerate(records):
        if index in BAD:
            assert record == {"error": BAD[index], "raw": READ[index]}
        else:
            assert "error" not in record, record
    texts = [r["payload"]["text"] for r in records if r.get("type") == "external.chat.message.v1"]
    assert texts == GOOD_TEXTS


class _FailsOnClearchat(EnvelopeBuilder):
    """A builder that raises for one kind of event: anything unexpected in conversion."""

    def build(self, message, received_at=None, *, ids=None):  # type: ignore[no-untyped-def]
        if type(message).__name__ == "Clearchat":
            raise RuntimeError("conversion bug")
        return super().build(message, received_at, ids=ids)


def test_a_read_contains_an_error_raised_while_converting_one_event() -> None:
    clearchat = "@room-id=5;tmi-sent-ts=1 :tmi.twitch.tv CLEARCHAT #one :victim"
    lines = [privmsg(1, "good-1"), clearchat, privmsg(2, "good-2")]
    # make_codec: the Python codec (the native one does not mirror a subclass).
    decoded = make_codec(_FailsOnClearchat()).decode(lines, 1.7e9)
    assert [orjson.loads(m.data)["payload"]["text"] for m in decoded.envelopes] == [
        "good-1",
        "good-2",
    ]
    assert [(line, type(error)) for line, error in decoded.errors] == [(clearchat, RuntimeError)]
    assert [type(message).__name__ for _, message in decoded.control] == ["Clearchat"]


# -- line length -------------------------------------------------------------------------


async def _serve_bytes(parts: list[bytes]) -> tuple[asyncio.Server, int]:
    """A raw TCP server on loopback that writes ``parts`` to its one client, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_all(port: int) -> tuple[list[str], LineTransport]:
    transport = await open_transport(parse_irc_url(f"irc://127.0.0.1:{port}"))
    lines: list[str] = []
    try:
        while True:
            lines += await transport.read_lines()
    except TransportClosed:
        pass
    finally:
        await transport.close()
    return lines, transport


async def test_a_line_over_the_limit_is_discarded_as_it_arrives_in_bounded_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    at_limit = b"@x=" + b"y" * (MAX_INCOMING_LINE_BYTES - 3)
    huge = 16 * 1024 * 1024  # one 16 MB line without a line break, 64 KiB at a time
    parts = [b"PING :before\r\n", at_limit + b"\r\n", b"OVERSIZED "]
    parts += [b"z" * (1 << 16)] * (huge // (1 << 16))
    parts += [b"\r\nPING :after\r\n", b"w" * (MAX_INCOMING_LINE_BYTES + 1) + b"\nPING :last\r\n"]
    server, port = await _serve_bytes(parts)
    tracemalloc.start()
    try:
        lines, transport = await _read_all(port)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        server.close()
        await server.wait_closed()
    assert lines == ["PING :before", at_limit.decode(), "PING :after", "PING :last"]
    assert transport.oversized_lines == 2
    # Never the 16 MB line (buffering it whole peaks above 16 MB); the in-process server's
    # write buffers are traced too, hence the slack over the transport's own 32 KiB + 64 KiB.
    assert peak < 2 * 1024 * 1024, peak
    logged = [r.getMessage() for r in caplog.records if "discarded a line" in r.getMessage()]
    assert len(logged) == 2  # once per line, not once per chunk
    assert "OVERSIZED zzz" in logged[0]
    assert all(len(message) < 300 for message in logged)  # a prefix, not the line


async def test_an_oversized_line_is_counted_and_the_read_loop_goes_on() -> None:
    lines = [
        privmsg(1, "good-1"),
        privmsg(2, "x" * (MAX_INCOMING_LINE_BYTES + 1)),
        privmsg(3, "good-3"),
    ]
    publisher = MemoryPublisher()
    async with ChatSimulator(replay_lines=lines) as sim:
        settings = settings_for(Settings.defaults(message_bus_driver="memory"), sim.port, ("one",))
        async with running(settings, publisher=publisher) as service:
            await eventually(lambda: service.counters.published >= 2, what="good lines")
            await eventually(lambda: service.counters.oversized_lines == 1, what="counted")
            debug = service.view.debug_snapshot()
            assert debug["counters"]["oversizedLines"] == 1
            assert any(e["code"] == "oversized_line" for e in debug["recentErrors"])
            assert service.state.connected
            metrics = (await get(service, "/metrics")).text
            assert "ingress_twitch_oversized_lines_total 1.0" in metrics
    texts = [
        orjson.loads(m.data)["payload"]["text"]
        for m in publisher.messages
        if m.type == "external.chat.message.v1"
    ]
    assert texts == ["good-1", "good-3"]


def test_an_envelope_is_bounded_by_the_line_limit() -> None:
    """The worst amplification (a line packed with one-character emote ranges) of a line at
    the limit stays far below the bus's 1 MB message limit (NATS's default max_payload)."""
    ranges = ",".join(f"{i}-{i}" for i in range(0, 2000, 2))
    head = f"@emotes=25:{ranges};id=x;room-id=5"
    line = head + " :a!a@a PRIVMSG #one :" + "K " * 1000
    line = line[:MAX_INCOMING_LINE_BYTES]
    assert len(line.encode()) <= MAX_INCOMING_LINE_BYTES
    for name in CODECS:
        decoded = new_codec(name).decode([line], 1.7e9)
        assert decoded.chat_only, decoded
        (item,) = decoded.envelopes
        assert len(item.data) < 1_000_000


async def test_unknown_commands_are_counted() -> None:
    lines = [privmsg(1, "good-1"), ":tmi.twitch.tv FOO #one :x", ":x BAR", privmsg(2, "good-2")]
    async with ChatSimulator(replay_lines=lines) as sim:
        settings = settings_for(Settings.defaults(message_bus_driver="memory"), sim.port, ("one",))
        async with running(settings) as service:
            await eventually(lambda: service.counters.published >= 2, what="good lines")
            await eventually(lambda: service.counters.unknown_commands == 2, what="counted")
            assert service.view.debug_snapshot()["counters"]["unknownCommands"] == 2
            metrics = (await get(service, "/metrics")).text
            assert "ingress_twitch_unknown_commands_total 2.0" in metrics


@pytest.mark.parametrize("pure", ["0", "1"], ids=["c", "python"])
def test_normalize_turns_an_oversized_line_into_one_error_record(pure: str) -> None:
    huge = "@x=" + "y" * (8 << 20)  # 8 MB, never held whole
    at_limit = privmsg(9, "z" * (MAX_INCOMING_LINE_BYTES - len(privmsg(9, ""))))
    lines = [
        privmsg(1, "good-1"),
        huge,
        privmsg(2, "good-2"),
        at_limit,
        "w" * (MAX_INCOMING_LINE_BYTES + 1),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "ingress_egress", "normalize", "--summary"],
        input="\r\n".join(lines).encode(),  # the last line has no line break at all
        capture_output=True,
        env={**os.environ, "INGRESS_EGRESS_PURE_PYTHON": pure},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    records = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(records) == len(lines)
    assert records[1] == {"error": f"line over {MAX_INCOMING_LINE_BYTES} bytes ({len(huge)} bytes)"}
    assert records[4] == {
        "error": f"line over {MAX_INCOMING_LINE_BYTES} bytes ({MAX_INCOMING_LINE_BYTES + 1} bytes)"
    }
    texts = [r["payload"]["text"] for r in records if "payload" in r]
    assert texts[:2] == ["good-1", "good-2"] and len(texts) == 3
    summary = orjson.loads(done.stderr.splitlines()[-1])["summary"]
    assert summary["oversized"] == 2
