"""``make demo``: the whole path on one machine with no configuration.

An embedded nats-server (JetStream), the Twitch chat simulator, the service itself, and a
consumer that prints each envelope as it arrives on ``internal.ingress.v1``. Ctrl-C stops
all of it; the nats-server child is stopped by PID.
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

import nats
import orjson
from nats.js.api import DeliverPolicy

from ingress_egress.config import Settings, parse_irc_url, pure_python, read_variable
from ingress_egress.observability import logs
from ingress_egress.service import Service
from ingress_egress.simulator import ChatSimulator

CHANNELS = ("demo_alpha", "demo_beta", "demo_gamma")


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


def _describe(envelope: dict) -> str:
    payload = envelope["payload"]
    channel = envelope["source"]["channel"]
    kind = envelope["type"].split(".")[2]
    if kind == "message":
        who = envelope["user"]["displayName"]
        emotes = f"  [{len(payload['emotes'])} emote(s)]" if payload["emotes"] else ""
        action = "* " if payload.get("isAction") else ""
        return f"#{channel:<11} {action}{who}: {payload['text']}{emotes}"
    if kind == "roomstate":
        settings = {k: v for k, v in payload.items() if k not in ("raw", "transport")}
        return f"#{channel:<11} (room settings {settings})"
    return f"#{channel:<11} ({kind}: {payload.get('noticeType') or payload.get('action')})"


async def _consume(url: str, subject: str, stream: str) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        while True:  # the stream appears once the service has started
            try:
                await js.stream_info(stream)
                break
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.1)
        sub = await js.subscribe(subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
        async for msg in sub.messages:
            envelope = orjson.loads(msg.data)
            print(f"  {_describe(envelope)}", flush=True)
    finally:
        await nc.close()


async def _run(rate: float, port: int, nats_url: str) -> None:
    async with ChatSimulator(rate=rate * len(CHANNELS)) as sim:
        settings = Settings.from_env({}).replace(
            ingress_egress_pure_python=pure_python(os.environ),
            message_bus_driver="nats",
            nats_url=nats_url,
            twitch_irc_url=parse_irc_url(f"irc://127.0.0.1:{sim.port}"),
            twitch_channels=CHANNELS,
            host="127.0.0.1",
            port=_free_port(port),
        )
        service = Service(settings)
        await service.start()
        base = f"http://127.0.0.1:{service.http.port}"
        print(
            f"\ningress-egress demo: simulator irc://127.0.0.1:{sim.port} -> service -> "
            f"JetStream {nats_url} ({settings.bus.ingress_subject})\n"
            f"  debug: {base}/_debug/twitch   ready: {base}/readyz\n"
            f"  Ctrl-C to stop. Envelopes as a consumer receives them:\n",
            flush=True,
        )
        consumer = asyncio.create_task(
            _consume(nats_url, settings.bus.ingress_subject, settings.bus.nats_stream)
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("\nstopping...", flush=True)
        await service.stop()
        counters = service.counters.as_dict()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await consumer
        print(f"done: {counters}", flush=True)


def main(rate: float = 5.0, port: int = 8080) -> int:
    binary = _nats_server_binary()
    if binary is None:
        print("demo: nats-server not found; run `make demo` (it installs it)", file=sys.stderr)
        return 2
    logs.configure(read_variable(os.environ, "LOG_LEVEL", default="warning"))
    with tempfile.TemporaryDirectory(prefix="ingress-egress-demo-") as workdir:
        proc, url = _start_nats(binary, Path(workdir) / "jetstream")
        try:
            asyncio.run(_run(rate, port, url))
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    return 0
