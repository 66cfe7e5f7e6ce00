"""``make demo``: the whole round trip on one machine with no configuration.

An embedded nats-server (JetStream); the Twitch chat simulator in live mode, whose viewers
say ``!ping`` now and then, with a bot account and its Helix/OAuth mock; the service itself,
reading the demo channels as that bot and sending as it; the RESPONDER
(``commands/responder.py``, a stand-in for the platform's Router -> ... -> Finalizer chain)
answering each ``!ping`` through ``internal.egress.v1``; the finalizer stream the platform
would own, so every command's result is stored; and a live view printing each envelope,
each answer and each result as they arrive. Ctrl-C stops all of it; the nats-server child is
stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import orjson
from nats.js.api import DeliverPolicy, StreamConfig

from ingress_egress.commands.responder import PING, PingResponder
from ingress_egress.config import Settings, read_variable
from ingress_egress.observability import logs
from ingress_egress.service import Service
from ingress_egress.simulator import BotAccount, ChatSimulator

CHANNELS = ("demo_alpha", "demo_beta", "demo_gamma")
# The bot the simulator knows and the service sends as (a made-up token for the mock only).
BOT = BotAccount("demo_bot", "990000001", "demo-bot-token")
FINALIZER_STREAM = "FINALIZER"  # the platform's finalizer owns it; the demo stands in
PING_INTERVAL_S = 3.0  # about one viewer !ping this often, well inside the bot's 20 per 30 s
LIVE_EVENTS_EVERY = 60  # a sub, a timeout, a deleted message now and then


def _free_port(preferred: int = 0) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _nats_server_binary() -> str | None:
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else shutil.which("nats-server")


def _start_nats(binary: str, store: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return proc, f"nats://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nats-server did not start")


def _short(identifier: str | None) -> str:
    """The tail of an id: the simulator's message ids share their head."""
    return (identifier or "?")[-8:]


def _describe(envelope: dict) -> str:
    payload = envelope["payload"]
    channel = envelope["source"]["channel"]
    kind = envelope["type"].split(".")[2]
    if kind == "message":
        who = envelope["user"]["displayName"]
        emotes = f"  [{len(payload['emotes'])} emote(s)]" if payload["emotes"] else ""
        action = "* " if payload.get("isAction") else ""
        if payload.get("isSelf"):  # the bot's own message, back through chat
            reply = (payload.get("reply") or {}).get("parentMessageId")
            answering = f", reply to {_short(reply)}" if reply else ""
            seen = f"  (message {_short(payload.get('messageId'))}{answering})"
            return f"#{channel:<11} [bot] {action}{who}: {payload['text']}{seen}"
        cue = f"  (message {_short(payload.get('messageId'))})" if payload["text"] == PING else ""
        return f"#{channel:<11} {action}{who}: {payload['text']}{emotes}{cue}"
    if kind == "roomstate":
        settings = {k: v for k, v in payload.items() if k not in ("raw", "transport")}
        return f"#{channel:<11} (room settings {settings})"
    return f"#{channel:<11} ({kind}: {payload.get('noticeType') or payload.get('action')})"


def _describe_answer(ping: dict[str, Any], command: dict[str, Any]) -> str:
    return (
        f"{'responder':<12} answers {_short(ping['payload'].get('messageId'))} in "
        f"#{command['target']['channel']} -> command {_short(command['id'])}: "
        f"{command['payload']['text']!r}"
    )


def _describe_result(record: dict[str, Any]) -> str:
    ids = ",".join(_short(i) for i in record.get("twitchMessageIds") or []) or "-"
    reason = f" reason {record['reason']}" if record.get("reason") else ""
    return (
        f"{'finalizer':<12} {record.get('status')} #{record.get('channel')} "
        f"command {_short(record.get('envelopeId'))} twitch id {ids}{reason}"
    )


async def _print_stream(url: str, subject: str, describe: Any) -> None:
    """Print every message of ``subject`` as it arrives, once a stream captures it."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        while True:  # the ingress stream appears once the service has started
            try:
                await js.find_stream_name_by_subject(subject)
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.1)
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        async for msg in sub.messages:
            print(f"  {describe(orjson.loads(msg.data))}", flush=True)
    finally:
        await nc.close()


async def _create_finalizer_stream(url: str, subject: str) -> None:
    """As the platform's finalizer would: results need a stream to be stored in."""
    nc = await nats.connect(url)
    try:
        await nc.jetstream().add_stream(StreamConfig(name=FINALIZER_STREAM, subjects=[subject]))
    finally:
        await nc.close()


def demo_settings(nats_url: str, sim: ChatSimulator, port: int, spool: Path) -> Settings:
    """The service as the demo bot: reading the demo channels, sending through the Helix
    mock (the token has ``user:write:chat`` and the client id is the mock's)."""
    assert sim.helix_url is not None
    env = {
        "MESSAGE_BUS_DRIVER": "nats",
        "NATS_URL": nats_url,
        "TWITCH_IRC_URL": f"irc://127.0.0.1:{sim.port}",
        "TWITCH_CHANNELS": ",".join(CHANNELS),
        "TWITCH_BOT_USERNAME": BOT.login,
        "TWITCH_OAUTH_TOKEN": BOT.token,
        "TWITCH_CLIENT_ID": sim.helix_client_id,
        "TWITCH_OAUTH_URL": f"{sim.helix_url}/oauth2",
        "TWITCH_HELIX_URL": f"{sim.helix_url}/helix",
        "HOST": "127.0.0.1",
        "PORT": str(_free_port(port)),
        "SPOOL_DIR": str(spool),
    }
    # The user's own choices of these two still hold (the table reads them).
    passed = {
        k: v for k, v in os.environ.items() if k in ("INGRESS_EGRESS_PURE_PYTHON", "LOG_LEVEL")
    }
    return Settings.from_env({**passed, **env})


def _pings_every(total_rate: float) -> int:
    """Every how many chat messages a viewer says ``!ping``: about every PING_INTERVAL_S,
    and not a multiple of the channel count, so the pings go round the channels (chat is
    dealt to them in turn)."""
    every = max(1, round(total_rate * PING_INTERVAL_S))
    return every + 1 if every % len(CHANNELS) == 0 else every


def _simulator(rate: float) -> ChatSimulator:
    total = rate * len(CHANNELS)
    return ChatSimulator(
        rate=total,
        record=False,  # runs until Ctrl-C: keep memory flat
        live_channels=CHANNELS,
        live_events_every=LIVE_EVENTS_EVERY,
        viewer_pings_every=_pings_every(total),
        bots=[BOT],
        helix_port=0,
    )


async def _run(rate: float, port: int, nats_url: str, workdir: Path) -> None:
    async with _simulator(rate) as sim:
        settings = demo_settings(nats_url, sim, port, workdir / "spool")
        bus = settings.bus
        await _create_finalizer_stream(nats_url, bus.finalizer_subject)
        service = Service(settings)
        await service.start()
        base = f"http://127.0.0.1:{service.http.port}"
        print(
            f"\ningress-egress demo: simulator irc://127.0.0.1:{sim.port} (Helix {sim.helix_url})"
            f" -> service as {BOT.login} -> JetStream {nats_url}\n"
            f"  {bus.ingress_subject} -> responder (stand-in for the platform) -> "
            f"{settings.egress_subject} -> service -> chat; results on {bus.finalizer_subject}\n"
            f"  debug: {base}/_debug/twitch   ready: {base}/readyz\n"
            f"  Ctrl-C to stop. Envelopes, answers and results as they arrive:\n",
            flush=True,
        )
        responder = PingResponder(
            nats_url,
            ingress_subject=bus.ingress_subject,
            egress_subject=settings.egress_subject,
            on_answer=lambda ping, command: print(
                f"  {_describe_answer(ping, command)}", flush=True
            ),
        )
        tasks = [
            asyncio.create_task(_print_stream(nats_url, bus.ingress_subject, _describe)),
            asyncio.create_task(_print_stream(nats_url, bus.finalizer_subject, _describe_result)),
            asyncio.create_task(responder.run()),
        ]
        await _until_stopped()
        print("\nstopping...", flush=True)
        for task in tasks:
            task.cancel()
        await service.stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        print(f"done: {service.counters.as_dict()} responder: {responder.counts}", flush=True)


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(rate: float = 5.0, port: int = 8080) -> int:
    binary = _nats_server_binary()
    if binary is None:
        print("demo: nats-server not found; run `make demo` (it installs it)", file=sys.stderr)
        return 2
    logs.configure(read_variable(os.environ, "LOG_LEVEL", default="warning"))
    with tempfile.TemporaryDirectory(prefix="ingress-egress-demo-") as workdir:
        proc, url = _start_nats(binary, Path(workdir) / "jetstream")
        try:
            asyncio.run(_run(rate, port, url, Path(workdir)))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    return 0
