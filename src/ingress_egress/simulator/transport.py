"""Byte pipes under the simulator's IRC logic: raw TCP and IRC-over-WebSocket.

The protocol code only needs "send these CRLF-terminated lines" and "give me the next
line"; both transports provide exactly that, so TCP and WebSocket clients share one
implementation of the TMI behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from ingress_egress.protocol.connection import TransportClosed

MAX_LINE = 64 * 1024  # Twitch allows 8 KiB of tags + 512 bytes; be generous, not unbounded.


class Transport(ABC):
    kind: str = "?"

    @abstractmethod
    async def send(self, data: bytes) -> None:
        """Write ``data`` (whole CRLF-terminated IRC lines) and wait for buffer room."""

    @abstractmethod
    def lines(self) -> AsyncIterator[str]:
        """The client's lines without line endings, until it disconnects."""

    @abstractmethod
    async def close(self, *, abrupt: bool = False) -> None:
        """Flush and close; ``abrupt`` closes the TCP connection with no protocol goodbye."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the connection immediately, discarding anything not yet sent."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...


class TcpTransport(Transport):
    kind = "tcp"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @property
    def closed(self) -> bool:
        return self._writer.is_closing()

    async def send(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise TransportClosed("connection closed")
        self._writer.write(data)
        await self._writer.drain()

    async def lines(self) -> AsyncIterator[str]:
        reader = self._reader
        while True:
            try:
                raw = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # EOF; a last unterminated line counts
                if exc.partial.strip():
                    yield exc.partial.decode("utf-8", "replace").rstrip("\r\n")
                return
            except (asyncio.LimitOverrunError, ConnectionError):
                return
            yield raw.decode("utf-8", "replace").rstrip("\r\n")

    async def close(self, *, abrupt: bool = False) -> None:
        # transport.close() sends what is buffered, then FIN; for TCP an "abrupt" close is the
        # same minus any goodbye, which the caller simply does not send.
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    def abort(self) -> None:
        self._writer.transport.abort()


class WebSocketTransport(Transport):
    """IRC over WebSocket as Twitch does it: text frames holding CRLF-separated lines."""

    kind = "ws"

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws

    @property
    def closed(self) -> bool:
        return self._ws.transport.is_closing() or self._ws.close_code is not None

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data, text=True)
        except ConnectionClosed as exc:
            raise TransportClosed(str(exc)) from exc

    async def lines(self) -> AsyncIterator[str]:
        try:
            async for message in self._ws:
                text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
                # Browsers' IRC clients send one command per frame, often without CRLF.
                for line in text.split("\n"):
                    line = line.rstrip("\r")
                    if line:
                        yield line
        except ConnectionClosed:
            return

    async def close(self, *, abrupt: bool = False) -> None:
        if abrupt:
            self._ws.transport.close()  # TCP FIN without a WebSocket close frame
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 2.0)

    def abort(self) -> None:
        self._ws.transport.abort()
