"""A small uvicorn server inside the simulator's event loop (the Helix mock, the control
endpoint): bound before it starts, so the port is known at once, and stopped promptly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.applications import Starlette


class _NoSignalServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The simulator's CLI handles SIGINT/SIGTERM itself; uvicorn must not take them.
        yield


class EmbeddedHttp:
    def __init__(self, app: Starlette, host: str, port: int, name: str) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> int:
        """Listen and serve; returns the port (a free one when ``port`` was 0)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", access_log=False)
        server = self._server = _NoSignalServer(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        while not server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OSError(f"{self.name} stopped while starting")
            await asyncio.sleep(0.005)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None
