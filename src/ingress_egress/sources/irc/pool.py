"""The connection pool: channels spread over several Twitch IRC connections of one identity.

Each connection (a ``TwitchIrcClient``) holds at most ``channels_per_connection``
channels. All connections share one ``JoinLimiter`` (Twitch limits JOINs per identity, across
connections) and one ``ConnectGate`` (one new connection per interval, reconnects included).
Channels can be added and removed while running; removed ones are PARTed, new ones JOINed
through the limiter. The pool is a ``ChatSource`` (``sources/base.py``) and its own
``ChannelReader``; it writes the shared ``ChatState`` (shards through their sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ingress_egress.credentials import CredentialsProvider
from ingress_egress.protocol.endpoint import IrcEndpoint
from ingress_egress.retry import Backoff
from ingress_egress.sources.base import (
    ChannelChange,
    ChannelReader,
    SelfMessageHook,
    chat_readiness,
)
from ingress_egress.sources.irc.client import (
    EnvelopeSink,
    TransportFactory,
    TwitchIrcClient,
)
from ingress_egress.sources.irc.codec import IrcCodec
from ingress_egress.sources.irc.dedup import DEFAULT_CAPACITY
from ingress_egress.sources.irc.joins import ConnectGate, JoinLimiter
from ingress_egress.sources.irc.transport import open_transport
from ingress_egress.status import ChatSnapshot, ChatState, Counters, ErrorLog
from ingress_egress.status.counters import iso_from_monotonic


@dataclass(frozen=True, slots=True)
class PoolLimits:
    channels_per_connection: int = 50
    connect_interval_s: float = 2.0
    join_limit: int = 20
    join_window_s: float = 10.0
    join_timeout_s: float = 15.0
    failed_retry_s: float = 300.0
    keepalive_idle_s: float = 30.0
    pong_timeout_s: float = 10.0
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 30.0
    dedup_capacity: int = DEFAULT_CAPACITY

    @property
    def join_allowance_s(self) -> float:
        """Slack past the JOIN window for network delay: 10% of it, at most 1 s."""
        return min(1.0, self.join_window_s * 0.1)


class ChatPool:
    name = "twitch-irc"
    debug_section = "pool"

    def __init__(
        self,
        *,
        endpoint: IrcEndpoint,
        channels: tuple[str, ...],
        login: str,
        credentials: CredentialsProvider | None,
        codec: IrcCodec,
        sink: EnvelopeSink,
        state: ChatState,
        counters: Counters,
        errors: ErrorLog,
        limits: PoolLimits | None = None,
        transport_factory: TransportFactory = open_transport,
        on_self_message: SelfMessageHook | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.login = login
        self.credentials = credentials
        self.codec = codec
        self.sink = sink
        self.state = state
        self.counters = counters
        self.errors = errors
        self.limits = limits or PoolLimits()
        self._join_limiter = JoinLimiter(
            self.limits.join_limit, self.limits.join_window_s, self.limits.join_allowance_s
        )
        self.connect_gate = ConnectGate(self.limits.connect_interval_s)
        self._open = transport_factory
        self._on_self_message = on_self_message  # each connection's (egress/echo.py)
        self.irc_connections: list[TwitchIrcClient] = []
        self._owner: dict[str, TwitchIrcClient] = {}
        self._runs: dict[TwitchIrcClient, asyncio.Task[None]] = {}
        self._retired: set[asyncio.Task[None]] = set()
        self._connections_made = 0
        self._running = False
        self._stopping = asyncio.Event()
        self.state.set_reading(())
        self.change(add=list(channels))
        if not self.irc_connections:
            self._new_connection()  # one connection even without channels: it reports health

    @property
    def join_limiter(self) -> JoinLimiter:
        return self._join_limiter

    @join_limiter.setter
    def join_limiter(self, limiter: JoinLimiter) -> None:
        """Swap the shared limiter (benchmarks use a verified bot's rate) on every connection."""
        self._join_limiter = limiter
        for connection in self.irc_connections:
            connection.join_limiter = limiter

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        self._running = True
        for connection in self.irc_connections:
            self._start(connection)
        try:
            await self._stopping.wait()
        finally:
            self._running = False

    async def stop(self) -> None:
        self._stopping.set()
        connections = list(self.irc_connections)
        await asyncio.gather(
            *(connection.stop() for connection in connections), return_exceptions=True
        )
        tasks = [*self._runs.values(), *self._retired]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()
        self._refresh()

    def _start(self, connection: TwitchIrcClient) -> None:
        if self._running and connection not in self._runs:
            self._runs[connection] = asyncio.create_task(
                connection.run(), name=f"twitch-{connection.name}"
            )

    def _new_connection(self) -> TwitchIrcClient:
        limits = self.limits
        connection = TwitchIrcClient(
            endpoint=self.endpoint,
            channels=(),
            login=self.login,
            credentials=self.credentials,
            codec=self.codec,
            sink=self.sink,
            state=self.state,
            counters=self.counters,
            errors=self.errors,
            backoff=Backoff(limits.reconnect_initial_s, limits.reconnect_max_s),
            keepalive_idle_s=limits.keepalive_idle_s,
            pong_timeout_s=limits.pong_timeout_s,
            join_limiter=self.join_limiter,
            connect_gate=self.connect_gate,
            join_timeout_s=limits.join_timeout_s,
            failed_retry_s=limits.failed_retry_s,
            dedup_capacity=limits.dedup_capacity,
            name=f"irc-{self._connections_made}",
            on_change=self._refresh,
            transport_factory=self._open,
            on_self_message=self._on_self_message,
        )
        self._connections_made += 1
        self.irc_connections.append(connection)
        self._start(connection)
        return connection

    def _retire(self, connection: TwitchIrcClient) -> None:
        self.irc_connections.remove(connection)
        run = self._runs.pop(connection, None)

        async def wind_down() -> None:
            await connection.stop()
            if run is not None:
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run

        task = asyncio.ensure_future(wind_down())
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    # -- channels -------------------------------------------------------------------

    def change(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> ChannelChange:
        """Add and remove channels (logins, already validated); returns what changed."""
        removed = [c for c in dict.fromkeys(remove) if c in self._owner]
        by_connection: dict[TwitchIrcClient, list[str]] = {}
        for channel in removed:
            by_connection.setdefault(self._owner.pop(channel), []).append(channel)
        for connection, channels in by_connection.items():
            connection.remove_channels(channels)
            if not connection.channels and len(self.irc_connections) > 1:
                self._retire(connection)
        added = [c for c in dict.fromkeys(add) if c not in self._owner]
        room = self.limits.channels_per_connection
        pending = list(added)
        while pending:
            open_connection = next(
                (s for s in self.irc_connections if len(s.channels) < room), None
            )
            target = open_connection if open_connection is not None else self._new_connection()
            free = room - len(target.channels)
            take, pending = pending[:free], pending[free:]
            for channel in take:
                self._owner[channel] = target
            target.add_channels(take)
        before = set(self.state.reading)
        reading = tuple(c for c in self.state.reading if c in self._owner) + tuple(
            c for c in added if c not in before
        )
        self.state.set_reading(reading)
        self._refresh()
        return ChannelChange(tuple(added), tuple(removed), reading)

    def replace(self, channels: tuple[str, ...]) -> ChannelChange:
        """Read exactly ``channels`` (SIGHUP, a watched document, the cluster's share)."""
        keep = set(channels)
        return self.change(add=list(channels), remove=[c for c in self._owner if c not in keep])

    # -- state ------------------------------------------------------------------------

    def _refresh(self) -> None:
        """Fold the connections into the shared ``ChatState`` (on connection events only)."""
        connections = self.irc_connections
        connected = bool(connections) and all(s.connected for s in connections)
        since = [s.current.since for s in connections if s.current is not None and s.current.since]
        self.state.set_connected(connected, min(since) if since else None)
        self.state.set_logged_in(connected)

    @property
    def last_read_at(self) -> float | None:
        reads = [t for t in (s.last_read_at for s in self.irc_connections) if t is not None]
        return max(reads) if reads else None

    def connections(self) -> list[dict[str, Any]]:
        """One entry per live connection (two for one during a RECONNECT overlap)."""
        now = time.monotonic()
        out: list[dict[str, Any]] = []
        for connection in self.irc_connections:
            sessions = connection.sessions()
            base = {
                "shard": connection.name,  # the /_debug/twitch key, kept
                "endpoint": str(self.endpoint),
                "channels": len(connection.channels),
                "reconnects": connection.reconnects,
            }
            if not sessions:
                out.append(
                    {
                        **base,
                        "connection": None,
                        "connected": False,
                        "connectedSince": None,
                        "connectedForSeconds": None,
                        "nick": self.state.identity,
                        "joinedChannels": 0,
                        "pendingChannels": 0,
                        "lastMessageAgeSeconds": None,
                        "replacing": False,
                    }
                )
            for session in sessions:
                since = session.since
                out.append(
                    {
                        **base,
                        "connection": session.number,
                        "connected": session.logged_in,
                        "connectedSince": iso_from_monotonic(since) if since is not None else None,
                        "connectedForSeconds": round(now - since, 1) if since else None,
                        "nick": self.state.identity,  # login or "anonymous"
                        "joinedChannels": len(session.joined),
                        "pendingChannels": len(session.pending) + len(session.queued),
                        "lastMessageAgeSeconds": round(now - session.last_read, 3),
                        "replacing": session.retiring,
                    }
                )
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "connections": len(self.irc_connections),
            "channelsPerConnection": self.limits.channels_per_connection,
            "joinRate": self.join_limiter.describe(),
            "duplicatesDropped": self.state.duplicates_dropped,
        }

    def snapshot(self) -> ChatSnapshot:
        return self.state.snapshot()

    def readiness(self) -> list[str]:
        return chat_readiness(self.state.snapshot())

    def channel_control(self) -> ChannelReader:
        return self
