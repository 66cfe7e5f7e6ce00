"""``make demo``: the round trip, for real.

The RESPONDER (the platform's stand-in) answers a viewer's ``!ping`` with a valid egress
command and nothing else; and the demo command itself, run as a process (nats-server, the
simulator, the service, the responder), shows a ``!ping`` answered by the bot's message
coming back through chat marked as the bot's, with the finalizer's ``sent`` result carrying
that very message's Twitch id, then stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from nats.js.api import StreamConfig

from ingress_egress.commands.responder import PingResponder, answer_for
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import PythonCodec
from tests.support.egress_commands import validator
from tests.support.nats import NatsServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)

BOT_ID = "990000001"
INGRESS, EGRESS = "internal.ingress.v1", "internal.egress.v1"


def envelope(text: str, *, user_id: str | None = None) -> dict[str, Any]:
    """The envelope the service publishes for a simulated viewer's (or the bot's) line."""
    line, _ = TrafficGenerator(7).says("demo_alpha", text, 1_796_400_000_000)
    if user_id is not None:
        line = re.sub(r"user-id=\d+", f"user-id={user_id}", line)
    codec = PythonCodec(EnvelopeBuilder())
    codec.set_self_user_id(BOT_ID)
    decoded = codec.decode([line], 1_796_400_000.5)
    result: dict[str, Any] = orjson.loads(decoded.envelopes[0].data)
    return result


def test_a_ping_is_answered_with_a_valid_command_to_its_channel() -> None:
    ping = envelope("!ping")
    command = answer_for(ping, now=1_796_400_001.0)
    assert command is not None
    validator("egress-command.schema.json").validate(command)
    assert command["id"] != ping["id"]
    assert command["correlationId"] == ping["correlationId"]
    assert command["traceId"] == ping["traceId"]
    assert command["timestamp"] == "2026-12-04T16:00:01.000Z"
    assert command["target"] == {
        "platform": "twitch",
        "channel": "demo_alpha",
        "channelId": ping["source"]["channelId"],
    }
    assert command["payload"] == {
        "text": f"pong @{ping['user']['displayName']}",
        "replyTo": ping["payload"]["messageId"],
        "isAction": False,
    }


def test_the_bot_other_text_and_other_events_are_not_answered() -> None:
    own = envelope("!ping", user_id=BOT_ID)
    assert own["payload"]["isSelf"] is True
    assert answer_for(own) is None
    assert answer_for(envelope("!pingu")) is None
    assert answer_for(envelope("hello !ping")) is None
    assert answer_for({**envelope("!ping"), "type": "external.chat.moderation.v1"}) is None
    assert answer_for(envelope("  !PING ")) is not None  # as a viewer may type it


async def test_the_responder_answers_pings_on_the_bus_and_skips_what_it_cannot_read(
    nats_server: NatsServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="INGRESS", subjects=[INGRESS]))
    await js.add_stream(StreamConfig(name="EGRESS", subjects=[EGRESS]))
    answered: list[tuple[dict, dict]] = []
    responder = PingResponder(
        nats_server.url,
        ingress_subject=INGRESS,
        egress_subject=EGRESS,
        on_answer=lambda ping, command: answered.append((ping, command)),
    )
    task = asyncio.create_task(responder.run())
    try:
        ping = envelope("!ping")
        bodies = [b"{not json", orjson.dumps(envelope("!ping", user_id=BOT_ID)), orjson.dumps(ping)]

        async def all_read() -> bool:
            # Published until the responder's subscription (new messages only) has seen them.
            if responder.counts.unreadable == 0:
                for body in bodies:
                    await js.publish(INGRESS, body)
            return responder.counts.unreadable >= 1 and responder.counts.answered >= 1

        await eventually(all_read, timeout=30, what="the responder reading the ingress stream")
        stored = await js.get_last_msg("EGRESS", EGRESS)
        command = orjson.loads(stored.data)
        assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == command["id"]
        assert command["payload"]["replyTo"] == ping["payload"]["messageId"]
        assert all(p["payload"].get("isSelf") is None for p, _ in answered)
        assert [c["id"] for _, c in answered].count(command["id"]) == 1
        assert responder.counts.failed == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await nc.close()


# -- the demo itself ------------------------------------------------------------------------

ANSWER = re.compile(r"responder\s+answers (\S+) in #(\w+) -> command (\S+): 'pong @(\S+)'")
BOT_LINE = re.compile(r"#(\w+)\s+\[bot\] demo_bot: pong @(\S+)\s+\(message (\S+), reply to (\S+)\)")
RESULT = re.compile(r"finalizer\s+sent #(\w+) command (\S+) twitch id (\S+)")


def round_trips(lines: list[str]) -> list[tuple[str, str]]:
    """(channel, Twitch id) of each ping answered, seen back in chat as the bot's, and
    reported ``sent`` with the id of that very chat message."""
    answers = [m.groups() for line in lines if (m := ANSWER.search(line))]
    bot_lines = [m.groups() for line in lines if (m := BOT_LINE.search(line))]
    results = [m.groups() for line in lines if (m := RESULT.search(line))]
    found = []
    for ping_id, channel, command_id, viewer in answers:
        for bot_channel, to, message_id, reply_to in bot_lines:
            if (bot_channel, to, reply_to) != (channel, viewer, ping_id):
                continue
            if (channel, command_id, message_id) in results:
                found.append((channel, message_id))
    return found


async def test_make_demo_answers_a_ping_through_chat_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "LOG_LEVEL": "warning", "TMPDIR": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ingress_egress",
        "demo",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = asyncio.create_task(read())
    try:
        await eventually(
            lambda: bool(round_trips(lines)) or proc.returncode is not None,
            timeout=60,
            what="a !ping answered through chat with a sent result",
        )
        assert round_trips(lines), "\n".join(lines[-40:])
        assert any("/_debug/twitch" in line for line in lines)
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0, "\n".join(lines[-20:])
        await reader
        assert lines[-1].startswith("done: "), "\n".join(lines[-20:])
        assert not any('"severity":"ERROR"' in line for line in lines), "\n".join(lines[-20:])
        # nats' store and the spool went with the demo
        assert not await asyncio.to_thread(os.listdir, tmp_path)
    finally:
        if proc.returncode is None:  # a failed check: Ctrl-C, so it stops its nats-server
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        reader.cancel()
