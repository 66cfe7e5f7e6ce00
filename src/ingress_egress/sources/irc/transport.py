"""Byte transports that deliver IRC lines: TCP, TLS and WebSocket, behind one interface.

The connection logic (client.py) only sees ``LineTransport``: lines in, lines out. A TCP/TLS
transport turns each read's complete lines into str with the splitter it is given: the
composition root passes the codec's (``IrcCodec.split_lines``: the C one when the native
codec is chosen); ``split_lines`` here is the Python one and the default.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from ingress_egress.protocol.connection import TransportClosed
from ingress_egress.protocol.endpoint import IrcEndpoint

READ_SIZE = 1 << 16
# The longest line accepted from Twitch, in bytes without CRLF. Real lines stay far below:
# IRCv3 allows 8191 bytes of tags plus 512 for the rest; a 500-character message with
# every emote range, a reply's parent body and all badges is ~10 KB. A longer line is
# discarded as its bytes arrive (never buffered whole), counted and logged once.
MAX_INCOMING_LINE_BYTES = 32 * 1024
LOG_PREFIX_CHARS = 80  # how much of a discarded line the log quotes

log = logging.getLogger("ingress_egress.irc")


class LineTransport(ABC):
    invalid_utf8: int = 0  # reads that held bytes which were not UTF-8 (replaced)
    oversized_lines: int = 0  # lines longer than MAX_INCOMING_LINE_BYTES, discarded

    def _discarded(self, head: bytes | str, size: int, complete: bool) -> None:
        """Count a line over the limit and log it once, quoting only its beginning."""
        self.oversized_lines += 1
        text = head if isinstance(head, str) else head[:LOG_PREFIX_CHARS].decode(errors="replace")
        log.warning(
            "discarded a line from Twitch over %d bytes (%s%d bytes): %r...",
            MAX_INCOMING_LINE_BYTES,
            "" if complete else "at least ",
            size,
            text[:LOG_PREFIX_CHARS],
        )

    def _within_limit(self, lines: list[str]) -> list[str]:
        """``lines`` without those over the limit. A str of n code points holds at most 4n
        UTF-8 bytes, so only a line of more than MAX_INCOMING_LINE_BYTES / 4 is ever measured."""
        if not lines or max(map(len, lines)) <= MAX_INCOMING_LINE_BYTES // 4:
            return lines
        kept = []
        for line in lines:
            size = len(line) if len(line) <= MAX_INCOMING_LINE_BYTES // 4 else len(line.encode())
            if size > MAX_INCOMING_LINE_BYTES:
                self._discarded(line, size, complete=True)
            else:
                kept.append(line)
        return kept

    @abstractmethod
    async def read_lines(self) -> list[str]:
        """The next complete lines (without CRLF); raises ``TransportClosed`` at EOF."""

    @abstractmethod
    async def send_lines(self, lines: list[str]) -> None:
        """Write lines, each terminated by CRLF, in one write."""

    @abstractmethod
    async def close(self) -> None: ...


def _decode(data: bytes, transport: LineTransport) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        transport.invalid_utf8 += 1
        return data.decode("utf-8", errors="replace")


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines if line not in ("", "\r")]


SplitLines = Callable[[bytes], tuple[list[str], int]]


def split_lines(chunk: bytes) -> tuple[list[str], int]:
    """(the chunk's lines, 1 if it held bytes that are not UTF-8 (replaced) else 0)."""
    try:
        return _split(chunk.decode("utf-8")), 0
    except UnicodeDecodeError:
        return _split(chunk.decode("utf-8", errors="replace")), 1


class StreamTransport(LineTransport):
    """IRC over TCP, optionally TLS (``irc://``, ``ircs://``). ``split_lines`` turns a
    chunk of complete lines into str (the codec's: see the module docstring)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        split_lines: SplitLines = split_lines,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._split_lines = split_lines
        self._tail = bytearray()  # the partial line after the last LF, at most the limit
        self._skipping = False  # inside a line over the limit: drop bytes up to its LF

    @classmethod
    async def open(
        cls, endpoint: IrcEndpoint, timeout: float, split_lines: SplitLines = split_lines
    ) -> StreamTransport:
        context = ssl.create_default_context() if endpoint.uses_tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=context,
                server_hostname=endpoint.host if context else None,
                limit=READ_SIZE,
            ),
            timeout,
        )
        return cls(reader, writer, split_lines)

    async def read_lines(self) -> list[str]:
        while True:
            data = await self._reader.read(READ_SIZE)
            if not data:
                raise TransportClosed("connection closed by server")
            if self._skipping:  # each byte of an oversized line is looked at once
                start = data.find(b"\n")
                if start == -1:
                    continue
                self._skipping = False
                data = data[start + 1 :]
            end = data.rfind(b"\n")
            if end == -1:
                self._keep_partial(data)
                continue
            if self._tail:
                chunk = bytes(self._tail) + data[: end + 1]
                self._tail.clear()
            else:
                chunk = data[: end + 1]
            self._keep_partial(data[end + 1 :])
            lines, invalid = self._split_lines(chunk)
            self.invalid_utf8 += invalid
            if len(chunk) > MAX_INCOMING_LINE_BYTES:  # else no line in it can be over the limit
                lines = self._within_limit(lines)
            if lines:
                return lines

    def _keep_partial(self, data: bytes) -> None:
        """Append to the partial line, unless that makes it longer than the limit: then it
        is discarded now and the rest of it as it arrives (memory stays bounded)."""
        if len(self._tail) + len(data) <= MAX_INCOMING_LINE_BYTES + 1:  # + 1: a CR before the LF
            self._tail += data
            return
        self._discarded(
            bytes(self._tail[:LOG_PREFIX_CHARS]) or data, len(self._tail) + len(data), False
        )
        self._tail.clear()
        self._skipping = True

    async def send_lines(self, lines: list[str]) -> None:
        if self._writer.is_closing():
            raise TransportClosed("connection is closing")
        self._writer.write("".join(f"{line}\r\n" for line in lines).encode())
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as error:
            raise TransportClosed(str(error)) from error

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (ConnectionError, OSError, TimeoutError, ssl.SSLError):
            pass


class WebSocketTransport(LineTransport):
    """IRC over WebSocket (``ws://``, ``wss://``): one or more CRLF-separated lines per frame."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    @classmethod
    async def open(cls, endpoint: IrcEndpoint, timeout: float) -> WebSocketTransport:
        url = f"{endpoint.scheme}://{endpoint.host}:{endpoint.port}{endpoint.path or '/'}"
        connection = await websockets.connect(
            url, subprotocols=[Subprotocol("irc")], open_timeout=timeout, max_size=1 << 20
        )
        return cls(connection)

    async def read_lines(self) -> list[str]:
        while True:
            try:
                frame = await self._connection.recv()
            except websockets.ConnectionClosed as error:
                raise TransportClosed(f"websocket closed ({error.rcvd})") from error
            text = frame if isinstance(frame, str) else _decode(frame, self)
            lines = self._within_limit(_split(text))
            if lines:
                return lines

    async def send_lines(self, lines: list[str]) -> None:
        try:
            await self._connection.send("\r\n".join(lines) + "\r\n")
        except websockets.ConnectionClosed as error:
            raise TransportClosed("websocket closed") from error

    async def close(self) -> None:
        await self._connection.close()


async def open_transport(
    endpoint: IrcEndpoint, timeout: float = 10.0, *, split_lines: SplitLines = split_lines
) -> LineTransport:
    """A connected transport for ``endpoint``; ``split_lines`` is used by TCP/TLS (a
    WebSocket frame is already text, or decoded whole)."""
    if endpoint.is_websocket:
        return await WebSocketTransport.open(endpoint, timeout)
    return await StreamTransport.open(endpoint, timeout, split_lines)
