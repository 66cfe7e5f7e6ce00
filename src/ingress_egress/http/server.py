"""uvicorn inside the service's own event loop, leaving signals to the composition root.

The HTTP side is bounded so that a flood of clients cannot take what Twitch and the spool
need (file descriptors, the event loop):

* at most ``max_connections`` open connections (a quarter of the process's file-descriptor
  limit, at most ``MAX_CONNECTIONS``); one more closes the oldest connection that has not
  sent a request yet (or itself, when all are busy) as soon as it is accepted;
* each request's head and body must arrive within ``REQUEST_DEADLINE_S`` (slow clients,
  idle connections that never send a request), and an idle keep-alive connection is closed
  after ``KEEP_ALIVE_S``.

The socket is bound here, before uvicorn runs, so a port in use or a host that cannot be
bound stops start-up with one ``ConfigError`` naming ``PORT`` or ``HOST``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import h11
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from ingress_egress.config import ConfigError

log = logging.getLogger("ingress_egress.http")

MAX_CONNECTIONS = 256  # probes, metrics scrapes and an operator: far more than enough
REQUEST_DEADLINE_S = 10.0  # a request's head and body, from the connection or last response
KEEP_ALIVE_S = 5.0
BACKLOG = 128

# uvicorn names used here that are not its documented API, checked against the installed
# version by tests/test_third_party_pins.py: what BoundedH11Protocol reads or overrides of
# H11Protocol, what it adds (which must not shadow one of uvicorn's), and what
# EmbeddedServer uses of uvicorn.Server.
UVICORN_PROTOCOL_USES = (
    "connections",  # the server's set of live protocols (server_state.connections)
    "conn",  # the h11.Connection
    "transport",
    "loop",
    "connection_made",
    "connection_lost",
    "on_response_complete",
)
PROTOCOL_ADDS = (
    "ledger",
    "for_server",
    "request_deadline_s",
    "_deadline",
    "_opened_at",
    "_make_room",
    "_arm",
    "_too_slow",
)
UVICORN_SERVER_USES = ("serve", "started", "servers", "server_state", "should_exit")
UVICORN_SERVER_OVERRIDES = ("capture_signals",)


def connection_limit() -> int:
    """A quarter of the fd limit (the rest stays for Twitch, the bus and the spool)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 4))


@dataclass(eq=False)
class ConnectionLedger:
    """One server's connections: its cap and what it counts. Each ``EmbeddedServer`` has its
    own, so two servers in one process never see (or reset) each other's counts."""

    max_connections: int = MAX_CONNECTIONS
    refused: int = 0  # connections closed at once: over the cap
    timed_out: int = 0  # connections closed because a request did not arrive in time
    pending: int = 0  # accepted by the listener, protocol not made yet
    live: set[asyncio.Protocol] = field(default_factory=set)  # made, not lost (each an fd)


class CappedListener(socket.socket):
    """The listening socket. asyncio accepts up to a backlog of connections before any of
    their protocols exists, so the cap in ``connection_made`` alone could still run the
    process out of file descriptors: here an accept beyond twice the cap closes the new
    connection at once (asyncio then stops accepting until the next loop iteration)."""

    ledger: ConnectionLedger  # its server's, set by ``bind``

    def accept(self) -> tuple[socket.socket, Any]:
        conn, address = super().accept()
        ledger = self.ledger
        if len(ledger.live) + ledger.pending >= 2 * ledger.max_connections:
            conn.close()
            ledger.refused += 1
            raise ConnectionAbortedError("over the HTTP connection cap")
        ledger.pending += 1
        return conn, address


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a deadline per request. uvicorn
    makes each connection's protocol from a class, so each server serves its own subclass
    (``for_server``) that carries the server's ledger."""

    request_deadline_s = REQUEST_DEADLINE_S
    ledger: ClassVar[ConnectionLedger]

    @classmethod
    def for_server(cls, ledger: ConnectionLedger) -> type[BoundedH11Protocol]:
        """This protocol for one server: its connections counted in ``ledger`` alone."""
        return cast(type[BoundedH11Protocol], type(cls.__name__, (cls,), {"ledger": ledger}))

    # uvicorn's H11Protocol narrows BaseProtocol's BaseTransport to a Transport (it only
    # ever serves stream sockets); this override keeps its signature.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        ledger = self.ledger
        ledger.pending = max(0, ledger.pending - 1)
        ledger.live.add(self)
        self._deadline: asyncio.TimerHandle | None = None
        self._opened_at = self.loop.time()
        super().connection_made(transport)
        if len(self.connections) > ledger.max_connections:
            self._make_room()
        if not transport.is_closing():
            self._arm()

    def _make_room(self) -> None:
        """Over the cap: close the oldest connection that has not sent a request yet (a
        slow or idle client), so a new probe still gets in; if every one is busy, this
        new one. Either way the fd is freed now (abort), not after a response."""
        idle = [
            c
            for c in self.connections
            if isinstance(c, BoundedH11Protocol)
            and c.conn.their_state is h11.IDLE
            and c is not self
        ]
        victim = min(idle, key=lambda c: c._opened_at) if idle else self
        self.ledger.refused += 1
        victim.transport.abort()
        self.connections.discard(victim)  # connection_lost follows; counted out now

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.request_deadline_s, self._too_slow)

    def _too_slow(self) -> None:
        self._deadline = None
        # IDLE: no request head yet; SEND_BODY: its body still arriving. DONE: the app has
        # the whole request and answers it (not ours to cut).
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            self.ledger.timed_out += 1
            self.transport.abort()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ledger.live.discard(self)
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
        super().connection_lost(exc)


class _NoSignalServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The service handles SIGTERM itself (graceful drain); uvicorn must not take it.
        yield


def bind(host: str, port: int, ledger: ConnectionLedger) -> socket.socket:
    """A listening socket counting in ``ledger``, or a ConfigError naming PORT (in use) or
    HOST (anything else)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError("HOST", f"cannot resolve {host[:40]!r}: {reason}") from None
    family, kind, proto, _, address = infos[0]
    sock = CappedListener(family, kind, proto)
    sock.ledger = ledger
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ConfigError("PORT", f"{port} is already in use on {host}") from None
        raise ConfigError("HOST", f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.setblocking(False)
    return sock


class EmbeddedServer:
    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.host = host
        self.requested_port = port
        self._ledger = ConnectionLedger(max_connections=connection_limit())
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=BoundedH11Protocol.for_server(self._ledger),
            timeout_keep_alive=int(KEEP_ALIVE_S),
            backlog=BACKLOG,
            log_level="warning",
            access_log=False,
            log_config=None,  # uvicorn's records go through the service's (redacting) handler
            lifespan="off",
            loop="none",
        )
        self._server = _NoSignalServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._ledger.pending = 0  # a new listening socket has accepted nothing yet
        sock = bind(self.host, self.requested_port, self._ledger)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        """The bound port (useful when configured as 0)."""
        servers = self._server.servers
        return servers[0].sockets[0].getsockname()[1] if servers else 0

    def stats(self) -> dict[str, Any]:
        return {
            "open": len(self._server.server_state.connections),
            "maxConnections": self._ledger.max_connections,
            "refused": self._ledger.refused,
            "timedOut": self._ledger.timed_out,
        }

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
