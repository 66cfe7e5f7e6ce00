"""Hostile lines from a (simulated) Twitch server: a read never loses its valid lines
because one line in it is bad, on both codecs, and every bad line is a clear, counted error.

Each read goes through the real read path (the simulator over a real socket, the service's
pool and pipeline) with the C extension (direct path on and off) and with the pure-Python
reference, and through ``ingress-egress normalize`` as a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest

from ingress_egress import _native
from ingress_egress.bus.base import OutboundMessage
from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.config import Settings
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.pipeline import Pipeline
from ingress_egress.pipeline.outbound import lines_to_outbound
from ingress_egress.protocol import IrcParseError
from ingress_egress.simulator import ChatSimulator
from ingress_egress.status import Counters, ErrorLog
from tests.support.service import eventually, running, settings_for

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

CODECS = ["c-direct", "c-per-line", "python"] if _native.available() else ["python"]


@contextmanager
def codec(name: str) -> Iterator[None]:
    """The C extension with its direct path on or off, or the pure-Python reference."""
    speedups = _native.speedups
    if speedups is not None:
        _native.set_enabled(name != "python")
        speedups.set_direct_enabled(name == "c-direct")
    try:
        yield
    finally:
        if speedups is not None:
            _native.set_enabled(True)
            speedups.set_direct_enabled(True)


@pytest.mark.parametrize("name", CODECS)
def test_each_bad_line_is_its_own_error_and_the_rest_converts(name: str) -> None:
    with codec(name):
        items = lines_to_outbound(READ, EnvelopeBuilder(), 1.7e9, RandomIds(), 1.0)
    for index, item in enumerate(items):
        if index in BAD:
            assert isinstance(item, IrcParseError), (index, item)
            assert item.reason == BAD[index]
        else:
            assert not isinstance(item, Exception), (index, item)
    cheered = items[7]
    assert isinstance(cheered, OutboundMessage)
    assert orjson.loads(cheered.data)["payload"]["cheers"] == []


@pytest.mark.parametrize("name", CODECS)
async def test_a_read_keeps_its_valid_lines_through_the_real_read_path(name: str) -> None:
    publisher = MemoryPublisher()
    with codec(name):
        async with ChatSimulator(replay_lines=READ) as sim:
            settings = settings_for(Settings(message_bus_driver="memory"), sim.port, ("one",))
            async with running(settings, publisher=publisher) as service:
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

    def build(self, message, received_at=None):  # type: ignore[no-untyped-def]
        if type(message).__name__ == "Clearchat":
            raise RuntimeError("conversion bug")
        return super().build(message, received_at)


def test_submit_lines_contains_an_error_raised_while_submitting_one_event() -> None:
    clearchat = "@room-id=5;tmi-sent-ts=1 :tmi.twitch.tv CLEARCHAT #one :victim"
    lines = [privmsg(1, "good-1"), clearchat, privmsg(2, "good-2")]
    pipeline = Pipeline(_FailsOnClearchat(), MemoryPublisher(), Counters(), ErrorLog())
    items = pipeline.submit_lines(lines, 1.7e9)
    assert items[0] is None and items[2] is None
    assert isinstance(items[1], RuntimeError)
    assert pipeline.counters.received == 2
