"""One real `ingress-egress serve` process for a test: started with the simulator and a NATS
URL in its environment, watched through ``/_debug/twitch``, stopped by SIGTERM or killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.delivery import CHANNELS
from tests.support.processes import free_port
from tests.support.waiting import eventually


class Serve:
    """One `ingress-egress serve` process; its output goes to a file."""

    def __init__(self, tmp_path: Path, sim_port: int, nats_url: str, **env: str) -> None:
        self.port = free_port()
        self.log_path = tmp_path / f"serve-{self.port}.log"
        environment = {
            **os.environ,
            "MESSAGE_BUS_DRIVER": "nats",
            "NATS_URL": nats_url,
            "TWITCH_CHANNELS": ",".join(CHANNELS),
            "TWITCH_IRC_URL": f"irc://127.0.0.1:{sim_port}",
            "IRC_RECONNECT_INITIAL_MS": "50",
            "IRC_RECONNECT_MAX_MS": "500",
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "SPOOL_DIR": str(tmp_path / "spool"),
            "LOG_FORMAT": "text",
            **env,
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingress_egress", "serve"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def debug(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{self.port}/_debug/twitch", timeout=5)
            return response.json()

    async def until(self, check: Any, timeout: float, what: str) -> dict[str, Any]:
        """The debug view once ``check(view)`` holds (the process must stay up)."""
        seen: list[dict[str, Any]] = []

        async def holds() -> bool:
            assert self.proc.poll() is None, f"serve exited: {self.log()}"
            try:
                seen[:] = [await self.debug()]
            except httpx.HTTPError:
                return False
            return bool(check(seen[0]))

        try:
            await eventually(holds, timeout, what, interval=0.1)
        except AssertionError as error:
            raise AssertionError(f"{error}: {self.log()}") from None
        return seen[0]

    async def terminate(self) -> float:
        """SIGTERM; the exit code must be 0. Returns how long the exit took."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.proc.wait, 20)
        took = time.monotonic() - started
        assert code == 0, self.log()
        return took

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def idle(debug: dict[str, Any]) -> bool:
    queue = debug["queue"]
    return queue["depth"] == 0 and queue["inFlight"] == 0
