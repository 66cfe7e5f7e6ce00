"""The simulator's IRC listeners (TCP, and WebSocket when asked): each accepted connection
gets an ``IrcSession`` and a keepalive PING loop, and is forgotten when it goes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.hub import CLOSE_ERRORS, SERVER, Connection, Hub
from ingress_egress.simulator.session import IrcSession, SessionContext
from ingress_egress.simulator.transport import (
    MAX_LINE,
    TcpTransport,
    Transport,
    WebSocketTransport,
)


class IrcListener:
    """Accepts IRC clients on ``port`` (and ``ws_port``); ``ping_interval`` seconds between
    the server's PINGs (``None``/0 = never), read when a connection is accepted."""

    def __init__(self, hub: Hub, sessions: SessionContext, faults: Faults) -> None:
        self.hub = hub
        self.sessions = sessions
        self.faults = faults
        self.ping_interval: float | None = None
        self.stopping = False
        self._tcp_server: asyncio.Server | None = None
        self._ws_server: WsServer | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int, ws_port: int | None) -> tuple[int, int | None]:
        """Listen; the ports bound (free ones where 0 was asked for)."""
        self.stopping = False
        self._tcp_server = await asyncio.start_server(self._on_tcp, host, port, limit=MAX_LINE)
        port = self._tcp_server.sockets[0].getsockname()[1]
        if ws_port is not None:
            self._ws_server = await serve(
                self._on_ws,
                host,
                ws_port,
                select_subprotocol=_select_subprotocol,
                process_request=_only_root_path,
                compression=None,
                max_size=MAX_LINE,
                close_timeout=1.0,
            )
            ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        return port, ws_port

    def close(self) -> None:
        """Stop accepting; connections stay until ``disconnect_all``."""
        self.stopping = True
        if self._tcp_server is not None:
            self._tcp_server.close()
        if self._ws_server is not None:
            self._ws_server.close(close_connections=False)

    async def disconnect_all(self) -> None:
        """Drop every connection and wait for their handlers and the listeners to finish."""
        for client in list(self.hub.clients.values()):
            client.transport.abort()
        if self._handlers:
            _, still = await asyncio.wait(set(self._handlers), timeout=2.0)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        if self._tcp_server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp_server.wait_closed(), 2.0)
        if self._ws_server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 2.0)
        self._tcp_server = self._ws_server = None

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(TcpTransport(reader, writer))

    async def _on_ws(self, ws: ServerConnection) -> None:
        await self._serve(WebSocketTransport(ws))

    def _accept(self, transport: Transport) -> Connection:
        hub = self.hub
        index = hub.next_index
        hub.next_index += 1
        faults = self.faults
        fault = "reconnect"
        if faults.drop_after is not None and (
            faults.reconnect_after is None or faults.drop_after <= faults.reconnect_after
        ):
            fault = "drop"
        client = Connection(index, transport, faults.message_budget(index), fault)
        hub.add(client)
        return client

    async def _serve(self, transport: Transport) -> None:
        if self.stopping:
            transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        client = self._accept(transport)
        session = IrcSession(self.sessions, client)
        pinger = asyncio.create_task(
            self._ping_loop(client), name=f"chat-simulator-ping-{client.index}"
        )
        try:
            async for line in transport.lines():
                if not await session.handle(line):
                    break
        except CLOSE_ERRORS:
            pass
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
            self.hub.forget(client)
            if not transport.closed:
                await transport.close()
            self._handlers.discard(task)
            self.hub.notify()

    async def _ping_loop(self, client: Connection) -> None:
        interval = self.ping_interval
        if interval is None or interval <= 0:
            return  # server PINGs disabled
        with contextlib.suppress(*CLOSE_ERRORS):
            while True:
                await asyncio.sleep(interval)
                if client.registered:
                    await client.transport.send(f"PING :{SERVER}\r\n".encode())


def _select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    # tmi.js offers "irc" and aborts unless it is echoed; other clients offer nothing.
    return Subprotocol("irc") if "irc" in subprotocols else None


def _only_root_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] in ("", "/"):
        return None
    return Response(404, "Not Found", Headers([("Content-Type", "text/plain")]), b"Not Found\n")
