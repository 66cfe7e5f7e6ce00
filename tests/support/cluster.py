"""Cluster tests' helpers: real ``ingress-egress serve`` members, and what the live
simulator and the JetStream stream say about them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import orjson

from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.envelope.outbound import message_to_outbound
from ingress_egress.protocol import parse_line
from ingress_egress.simulator import ChatSimulator, LiveMessage
from ingress_egress.twitch.messages import from_irc
from tests.support.nats import NatsHarness
from tests.support.processes import free_port
from tests.support.waiting import eventually

HEARTBEAT_MS = 500
TTL_MS = 3000


class MemberProcess:
    """One ``serve`` process of the cluster: started, probed and stopped by PID."""

    def __init__(self, name: str, workdir: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        self.env = {
            **os.environ,
            **env,
            "INSTANCE_ID": name,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "SPOOL_DIR": str(workdir / f"spool-{name}"),
            "LOG_FORMAT": "text",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "ingress_egress", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self, timeout: float = 30.0) -> MemberProcess:
        proc = self.proc = self._spawn()

        async def answers() -> bool:
            assert proc.poll() is None, f"{self.name} exited:\n{self.log_tail()}"
            return await self.debug() is not None

        try:
            await eventually(answers, timeout, f"{self.name} answering", interval=0.1)
        except AssertionError as error:
            raise AssertionError(f"{error}:\n{self.log_tail()}") from None
        return self

    async def get(self, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
                return await client.get(path, timeout=2)
        except httpx.HTTPError:
            return None

    async def debug(self) -> dict[str, Any] | None:
        response = await self.get("/_debug/twitch")
        return response.json() if response is not None and response.status_code == 200 else None

    async def ready(self) -> bool:
        response = await self.get("/readyz")
        return response is not None and response.status_code == 200

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    async def terminate(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM as Cloud Run sends it; returns (exit code, seconds it took)."""
        started = time.monotonic()
        self._signal(signal.SIGTERM)
        proc = self.proc
        assert proc is not None
        exited = f"{self.name} exiting on SIGTERM"
        await eventually(lambda: proc.poll() is not None, timeout, exited)
        return proc.returncode, time.monotonic() - started

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def member_env(
    sim_port: int, channels: Iterable[str], coordination: str, cluster: str, **extra: str
) -> dict[str, str]:
    return {
        "TWITCH_IRC_URL": f"irc://127.0.0.1:{sim_port}",
        "TWITCH_CHANNELS": ",".join(channels),
        "CLUSTER_COORDINATION": coordination,
        "CLUSTER_NAME": cluster,
        "CLUSTER_HEARTBEAT_MS": str(HEARTBEAT_MS),
        "CLUSTER_MEMBER_TTL_MS": str(TTL_MS),
        "CLUSTER_REPLICAS": "2",
        "IRC_RECONNECT_INITIAL_MS": "100",
        "IRC_RECONNECT_MAX_MS": "1000",
        "TWITCH_JOIN_RATE_LIMIT": "100",
        **extra,
    }


def latest_receivers(sim: ChatSimulator) -> dict[str, int]:
    """Each channel's receivers of its most recent live message."""
    out: dict[str, int] = {}
    for message in reversed(sim.live_log):
        if message.channel not in out:
            out[message.channel] = message.receivers
            if len(out) == len(sim.live_channels):
                break
    return out


async def wait_replicated(sim: ChatSimulator, replicas: int, timeout: float) -> float:
    """Wait until every channel's newest messages reach exactly ``replicas`` connections
    (twice in a row, a heartbeat apart); returns the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    steady = 0
    while True:
        counts = latest_receivers(sim)
        if len(counts) == len(sim.live_channels) and set(counts.values()) == {replicas}:
            steady += 1
            if steady >= 2:
                return time.monotonic() - started
        else:
            steady = 0
        if time.monotonic() > deadline:
            wrong = {c: n for c, n in counts.items() if n != replicas}
            raise AssertionError(f"not on {replicas} readers within {timeout}s: {wrong}")
        await asyncio.sleep(HEARTBEAT_MS / 1000)


def expected_ids(messages: Iterable[LiveMessage]) -> list[str]:
    """The envelope id each live message must have on the stream (deterministic per event,
    whichever member read it: docs/envelope.md)."""
    builder = EnvelopeBuilder()
    ids = RandomIds()
    out = []
    for message in messages:
        converted = message_to_outbound(
            builder, from_irc(parse_line(message.line)), time.time(), ids, 0.0
        )
        assert converted is not None, message.line
        out.append(converted.envelope_id)
    return out


async def stream_ids(url: str, subject: str, at_least: int, timeout: float = 60.0) -> Counter[str]:
    """Envelope ids on the stream (every type but ROOMSTATE, whose restatements each JOIN
    produces), with how often each is there."""
    received = await NatsHarness(url, "INGRESS", subject).received(at_least, timeout, settle=1.5)
    out: Counter[str] = Counter()
    for item in received:
        envelope = orjson.loads(item.data)
        if envelope["type"] != "external.chat.roomstate.v1":
            out[envelope["id"]] += 1
    return out
