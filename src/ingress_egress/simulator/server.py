"""A local Twitch chat (TMI) server: the IRC dialogue, fault switches and a chat firehose.

One ``ChatSimulator`` listens on TCP (and optionally WebSocket), speaks Twitch's flavour of
IRC to every client and runs one emitter task that writes PRIVMSG batches to the clients that
joined the channels, round-robin over the joined channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NamedTuple

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from ingress_egress.protocol.tags import format_tags
from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.traffic import (
    TrafficGenerator,
    clearmsg_line,
    room_id_for,
    user_id_for,
)
from ingress_egress.simulator.transport import (
    MAX_LINE,
    TcpTransport,
    Transport,
    WebSocketTransport,
)

SERVER = "tmi.twitch.tv"
CAPABILITIES = ("twitch.tv/membership", "twitch.tv/tags", "twitch.tv/commands")
_ANONYMOUS_RE = re.compile(r"^justinfan\d+$")
_PRE_LOGIN_COMMANDS = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"})
_CLOSE_ERRORS = (ConnectionError, OSError)  # TransportClosed is a ConnectionError


# Paced output is written at most this often: ~5 messages a write at 5,000 msg/s, close to a
# steady stream (Twitch writes each message as it comes) without a syscall per message.
PACE_TICK_S = 0.001


class Message(NamedTuple):
    """One chat event line queued for the clients of ``channel``."""

    channel: str  # routing channel login (no '#')
    line: str  # without CRLF, with tags
    msg_id: str
    text: str
    retarget: bool  # replayed line: may go to whichever channel is joined


# Live mode: chat is produced on this tick whether or not anyone listens; a client whose
# socket takes no more within LIVE_SEND_TIMEOUT_S is dropped, as Twitch drops slow readers,
# so one stalled client cannot stop the clock for the others.
LIVE_TICK_S = 0.005
LIVE_SEND_TIMEOUT_S = 1.0
LIVE_EVENTS = ("USERNOTICE", "CLEARCHAT", "CLEARMSG")


class LiveMessage(NamedTuple):
    """One event the live stream produced, and how many connections it was written to."""

    id: str  # the id tag (PRIVMSG, USERNOTICE), else the event's target (user or message id)
    channel: str  # login, no '#'
    command: str  # PRIVMSG, USERNOTICE, CLEARCHAT or CLEARMSG
    line: str  # as written to tagged connections, without CRLF
    receivers: int  # live connections joined to the channel that were written the line
    at: float  # time.monotonic() when it was produced


class _Client:
    __slots__ = (
        "budget",
        "caps",
        "channels",
        "fault",
        "index",
        "nick",
        "password",
        "receiving",
        "registered",
        "transport",
    )

    def __init__(self, index: int, transport: Transport, budget: int | None, fault: str) -> None:
        self.index = index
        self.transport = transport
        self.nick = ""
        self.password: str | None = None
        self.caps: set[str] = set()
        self.registered = False
        self.channels: set[str] = set()
        self.budget = budget  # chat messages left before ``fault`` fires (None = unlimited)
        self.fault = fault  # "drop" or "reconnect"
        self.receiving = True

    @property
    def tags(self) -> bool:
        return "twitch.tv/tags" in self.caps

    @property
    def anonymous(self) -> bool:
        return bool(_ANONYMOUS_RE.match(self.nick))


def _split_command(line: str) -> tuple[str, list[str]]:
    """``"@t :pfx CMD a b :c d"`` -> ``("CMD", ["a", "b", "c d"])`` (tags/prefix dropped)."""
    rest = line
    if rest.startswith("@"):
        rest = rest.partition(" ")[2].lstrip(" ")
    if rest.startswith(":"):
        rest = rest.partition(" ")[2].lstrip(" ")
    trailing: str | None = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    parts = rest.split()
    if not parts:
        return "", []
    params = parts[1:]
    if trailing is not None:
        params.append(trailing)
    return parts[0].upper(), params


def _replay_message(line: str) -> Message:
    """Routing channel, id tag and trailing text of a raw replay line."""
    line = line.rstrip("\r\n")
    msg_id = ""
    rest = line
    if line.startswith("@"):
        tags, _, rest = line.partition(" ")
        for tag in tags[1:].split(";"):
            if tag.startswith("id="):
                msg_id = tag[3:]
                break
    if rest.startswith(":"):
        rest = rest.partition(" ")[2]
    head, sep, text = rest.partition(" :")
    channel = next((p[1:].lower() for p in head.split()[1:] if p.startswith("#")), "")
    return Message(channel, line, msg_id, text if sep else "", True)


def _without_tags(line: str) -> str:
    return line.partition(" ")[2] if line.startswith("@") else line


class ChatSimulator:
    """A TMI-compatible IRC server with a configurable chat firehose and fault switches.

    ``sent[channel]`` lists ``(message_id, text)`` of every chat line written to at least one
    client socket, in send order; ``sent_count`` counts them. A message that no client could
    take (its only recipient reached a fault budget) is kept and sent to the next client that
    joins its channel, so a reconnecting client gets the remainder of the stream.

    For benchmarks: ``prebuilt=True`` (a ``count`` at full speed, generated chat) generates
    and encodes the whole stream when chat first has a listener and then only writes it, so
    the simulator's Python does not cap what a client can drain (``tmi-sent-ts`` is then the
    build time). ``warm_templates=True`` builds a channel's chat templates (~60 us each) when
    it is first joined rather than while its first messages are due, so that work does not
    share a core with what is measured during the first seconds.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int | None = None,
        rate: float | None = None,
        count: int | None = None,
        replay_lines: Sequence[str] | None = None,
        faults: Faults | None = None,
        seed: int = 1,
        record: bool = True,
        *,
        ping_interval: float | None = 60.0,
        batch_size: int = 512,
        pool_size: int = 1024,
        prebuilt: bool = False,
        warm_templates: bool = False,
        live_channels: Sequence[str] = (),
        live_events_every: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.live_channels = tuple(dict.fromkeys(c.lstrip("#").lower() for c in live_channels))
        if self.live_channels and (not rate or rate <= 0):
            raise ValueError("live_channels needs a rate > 0 (chat is produced on the clock)")
        if self.live_channels and (replay_lines is not None or prebuilt):
            raise ValueError("live_channels cannot be combined with replay_lines or prebuilt")
        if live_events_every is not None and live_events_every < 1:
            raise ValueError("live_events_every must be >= 1")
        self.live_events_every = live_events_every
        self.live_log: list[LiveMessage] = []
        self._live_count = 0
        self._unheard_count = 0
        self._live_stopped = False
        self._last_privmsg: dict[str, tuple[str, str, str]] = {}  # channel -> (id, login, text)
        self._event_ts: dict[str, int] = {}  # channel -> last event tmi-sent-ts (kept unique)
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self.rate = rate if rate else None
        self.count = count
        self.faults = faults if faults is not None else Faults()
        self.seed = seed
        self.record = record
        self.ping_interval = ping_interval
        self.batch_size = batch_size
        self.prebuilt = prebuilt and count is not None and not rate and replay_lines is None
        self.warm_templates = warm_templates
        self._prepared: deque[tuple[list[Message], bytes]] | None = None
        self.generator = TrafficGenerator(seed, pool_size=pool_size)
        self._replay: deque[Message] | None = None
        if replay_lines is not None:
            self._replay = deque(
                _replay_message(line) for line in replay_lines if line.strip("\r\n")
            )

        self.sent: dict[str, list[tuple[str, str]]] = {}
        self.joins: list[tuple[int, str]] = []
        self.parts: list[tuple[int, str]] = []
        self.logins: list[str] = []
        self.pongs: list[tuple[int, str]] = []
        self.privmsgs: list[tuple[int, str, str]] = []
        self._sent_count = 0

        self._clients: dict[int, _Client] = {}
        self._subs: dict[str, set[_Client]] = {}
        self._pending: deque[Message] = deque()
        self._join_times: dict[str, deque[float]] = {}
        self._next_index = 0
        self._rr = 0
        self._paused = False
        self._stopping = False
        self._changed = asyncio.Event()
        self._tcp_server: asyncio.Server | None = None
        self._ws_server: WsServer | None = None
        self._emitter: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._aux: set[asyncio.Task[None]] = set()

    # -- public state -------------------------------------------------------------------

    @property
    def sent_count(self) -> int:
        return self._sent_count

    @property
    def connections(self) -> int:
        return len(self._clients)

    @property
    def connections_made(self) -> int:
        """Connections accepted so far: the next one's index (as in ``joins``/``parts``)."""
        return self._next_index

    @property
    def finished(self) -> bool:
        """Whether ``count`` messages (or the whole replay) have been sent; in live mode,
        whether ``count`` have been produced, heard or not."""
        if self.live_channels:
            return self.count is not None and self._live_count >= self.count
        if self.count is not None and self._sent_count >= self.count:
            return True
        return self._replay is not None and not self._replay and not self._pending

    @property
    def live_count(self) -> int:
        """Messages the live stream produced (heard or not)."""
        return self._live_count

    @property
    def unheard_count(self) -> int:
        """Live messages written to no connection: lost, as they would be on Twitch."""
        return self._unheard_count

    def unheard(self) -> list[LiveMessage]:
        """The recorded live messages nobody received (``record=True``)."""
        return [m for m in self.live_log if m.receivers == 0]

    def stop_live(self) -> None:
        """Stop the live stream for good (``pause()`` stops it until ``resume()``)."""
        self._live_stopped = True
        self._notify()

    def pause(self) -> None:
        self._paused = True
        self._notify()

    def resume(self) -> None:
        self._paused = False
        self._notify()

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
    ) -> None:
        """Wait until ``predicate()`` is true; it is re-checked whenever the state changes."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"condition not met within {timeout}s (sent_count={self._sent_count}, "
                f"connections={self.connections})"
            ) from None

    async def wait_sent(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``sent_count >= n``; raises ``TimeoutError`` otherwise."""
        await self.wait_until(lambda: self._sent_count >= n, timeout)
        return True

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._tcp_server = await asyncio.start_server(
            self._on_tcp, self.host, self.port, limit=MAX_LINE
        )
        self.port = self._tcp_server.sockets[0].getsockname()[1]
        if self.ws_port is not None:
            self._ws_server = await serve(
                self._on_ws,
                self.host,
                self.ws_port,
                select_subprotocol=_select_subprotocol,
                process_request=_only_root_path,
                compression=None,
                max_size=MAX_LINE,
                close_timeout=1.0,
            )
            self.ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        emit = self._live_loop() if self.live_channels else self._emit_loop()
        self._emitter = asyncio.create_task(emit, name="chat-simulator-emitter")

    async def stop(self) -> None:
        """Close the listeners and every client connection; cancel all simulator tasks."""
        self._stopping = True
        self._notify()
        if self._tcp_server is not None:
            self._tcp_server.close()
        if self._ws_server is not None:
            self._ws_server.close(close_connections=False)
        tasks = [t for t in (self._emitter, *self._aux) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in list(self._clients.values()):
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
        self._tcp_server = self._ws_server = self._emitter = None

    async def __aenter__(self) -> ChatSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- connections ----------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._aux.add(task)
        task.add_done_callback(self._aux.discard)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(TcpTransport(reader, writer))

    async def _on_ws(self, ws: ServerConnection) -> None:
        await self._serve(WebSocketTransport(ws))

    async def _serve(self, transport: Transport) -> None:
        if self._stopping:
            transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        index = self._next_index
        self._next_index += 1
        faults = self.faults
        fault = "reconnect"
        if faults.drop_after is not None and (
            faults.reconnect_after is None or faults.drop_after <= faults.reconnect_after
        ):
            fault = "drop"
        client = _Client(index, transport, faults.message_budget(index), fault)
        self._clients[index] = client
        self._notify()
        pinger = asyncio.create_task(self._ping_loop(client), name=f"chat-simulator-ping-{index}")
        try:
            async for line in transport.lines():
                if not await self._handle(client, line):
                    break
        except _CLOSE_ERRORS:
            pass
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
            self._forget(client)
            if not transport.closed:
                await transport.close()
            self._handlers.discard(task)
            self._notify()

    def _forget(self, client: _Client) -> None:
        self._unsubscribe(client)
        self._clients.pop(client.index, None)

    def _unsubscribe(self, client: _Client) -> None:
        client.receiving = False
        for channel in client.channels:
            subs = self._subs.get(channel)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self._subs[channel]

    async def _ping_loop(self, client: _Client) -> None:
        interval = self.ping_interval
        if interval is None or interval <= 0:
            return  # server PINGs disabled
        with contextlib.suppress(*_CLOSE_ERRORS):
            while True:
                await asyncio.sleep(interval)
                if client.registered:
                    await client.transport.send(f"PING :{SERVER}\r\n".encode())

    async def _write(self, client: _Client, lines: list[str]) -> None:
        if lines:
            await client.transport.send(("\r\n".join(lines) + "\r\n").encode())

    # -- the IRC dialogue -------------------------------------------------------------------

    async def _handle(self, client: _Client, line: str) -> bool:
        """Process one client line; ``False`` means the connection is to be closed."""
        command, params = _split_command(line)
        if not command:
            return True
        if not client.registered and command not in _PRE_LOGIN_COMMANDS:
            return False  # Twitch drops clients that talk before logging in
        nick = client.nick or "*"
        if command == "CAP":
            await self._write(client, self._cap(client, params))
        elif command == "PASS":
            client.password = params[0] if params else ""
        elif command == "NICK":
            return await self._nick(client, params)
        elif command == "USER":
            pass
        elif command == "PING":
            if not self.faults.no_pong:
                token = params[-1] if params else SERVER
                await self._write(client, [f":{SERVER} PONG {SERVER} :{token}"])
        elif command == "PONG":
            self.pongs.append((client.index, params[-1] if params else ""))
            self._notify()
        elif command == "QUIT":
            return False
        elif command == "JOIN":
            return await self._join(client, params)
        elif command == "PART":
            await self._part(client, params)
        elif command == "PRIVMSG":
            await self._privmsg(client, params)
        else:
            await self._write(client, [f":{SERVER} 421 {nick} {command} :Unknown command"])
        return True

    def _cap(self, client: _Client, params: list[str]) -> list[str]:
        sub = params[0].upper() if params else ""
        if sub == "LS":
            return [f":{SERVER} CAP * LS :{' '.join(CAPABILITIES)}"]
        if sub == "LIST":
            return [f":{SERVER} CAP * LIST :{' '.join(sorted(client.caps))}"]
        if sub == "REQ":
            requested = params[1].split() if len(params) > 1 else []
            known = [c for c in requested if c.lstrip("-") in CAPABILITIES]
            unknown = [c for c in requested if c.lstrip("-") not in CAPABILITIES]
            for cap in known:
                if cap.startswith("-"):
                    client.caps.discard(cap[1:])
                else:
                    client.caps.add(cap)
            out = []
            if known:
                out.append(f":{SERVER} CAP * ACK :{' '.join(known)}")
            if unknown:
                out.append(f":{SERVER} CAP * NAK :{' '.join(unknown)}")
            return out
        return []  # CAP END and anything else: nothing to say

    async def _nick(self, client: _Client, params: list[str]) -> bool:
        if client.registered:
            return True  # Twitch ignores nick changes
        nick = (params[0] if params else "").lower()
        self.logins.append(nick)
        self._notify()
        if self.faults.reject_login and self.faults.applies_to(client.index):
            await self._write(client, [f":{SERVER} NOTICE * :Login authentication failed"])
            return False
        client.nick = nick
        if not nick or (
            not client.anonymous
            and (client.password is None or not client.password.startswith("oauth:"))
        ):
            await self._write(client, [f":{SERVER} NOTICE * :Improperly formatted auth"])
            return False
        client.registered = True
        lines = [
            f":{SERVER} 001 {nick} :Welcome, GLHF!",
            f":{SERVER} 002 {nick} :Your host is {SERVER}",
            f":{SERVER} 003 {nick} :This server is rather new",
            f":{SERVER} 004 {nick} :-",
            f":{SERVER} 375 {nick} :-",
            f":{SERVER} 372 {nick} :You are in a maze of twisty passages, all alike.",
            f":{SERVER} 376 {nick} :>",
        ]
        if client.tags and not client.anonymous:
            tags = {
                "badge-info": "",
                "badges": "",
                "color": "",
                "display-name": nick,
                "emote-sets": "0",
                "user-id": user_id_for(nick),
                "user-type": "",
            }
            lines.append(f"{format_tags(tags)} :{SERVER} GLOBALUSERSTATE")
        await self._write(client, lines)
        return True

    def _userstate(self, client: _Client, channel: str) -> str:
        tags = {
            "badge-info": "",
            "badges": "",
            "color": "",
            "display-name": client.nick,
            "emote-sets": "0",
            "mod": "0",
            "subscriber": "0",
            "user-type": "",
        }
        prefix = f"{format_tags(tags)} " if client.tags else ""
        return f"{prefix}:{SERVER} USERSTATE #{channel}"

    def _join_allowed(self, client: _Client) -> bool:
        limit = self.faults.join_limit_per_10s
        if limit is None:
            return True
        now = time.monotonic()
        attempts = self._join_times.setdefault(client.nick, deque())
        while attempts and now - attempts[0] >= self.faults.join_window:
            attempts.popleft()
        if len(attempts) >= limit:
            return False
        attempts.append(now)
        return True

    async def _join(self, client: _Client, params: list[str]) -> bool:
        nick = client.nick
        lines: list[str] = []
        for raw in (params[0] if params else "").split(","):
            channel = raw.strip().lstrip("#").lower()
            if not channel:
                continue
            self.joins.append((client.index, channel))
            if not self._join_allowed(client):
                await self._write(client, lines)
                return False  # over Twitch's JOIN rate limit: disconnected
            if channel in self.faults.ignored_joins:
                continue  # dropped silently: no echo, no NOTICE, no chat
            if self.faults.is_suspended(channel):
                lines.append(
                    f"@msg-id=msg_channel_suspended :{SERVER} NOTICE #{channel} "
                    ":This channel does not exist or has been suspended."
                )
                continue
            lines += [
                f":{nick}!{nick}@{nick}.{SERVER} JOIN #{channel}",
                f":{nick}.{SERVER} 353 {nick} = #{channel} :{nick}",
                f":{nick}.{SERVER} 366 {nick} #{channel} :End of /NAMES list",
            ]
            if client.caps & {"twitch.tv/tags", "twitch.tv/commands"}:
                room = {
                    "emote-only": "0",
                    "followers-only": "-1",
                    "r9k": "0",
                    "room-id": room_id_for(channel),
                    "slow": "0",
                    "subs-only": "0",
                }
                lines.append(self._userstate(client, channel))
                prefix = f"{format_tags(room)} " if client.tags else ""
                lines.append(f"{prefix}:{SERVER} ROOMSTATE #{channel}")
            client.channels.add(channel)
        await self._write(client, lines)
        # Subscribe only once the JOIN replies are out, so chat never precedes the JOIN echo.
        if client.receiving:
            for channel in client.channels:
                if self.warm_templates and channel not in self._subs:
                    self.generator.warm(channel, room_id_for(channel))
                self._subs.setdefault(channel, set()).add(client)
        self._notify()
        return True

    async def _part(self, client: _Client, params: list[str]) -> None:
        nick = client.nick
        lines: list[str] = []
        for raw in (params[0] if params else "").split(","):
            channel = raw.strip().lstrip("#").lower()
            if not channel:
                continue
            self.parts.append((client.index, channel))
            client.channels.discard(channel)
            subs = self._subs.get(channel)
            if subs is not None:
                subs.discard(client)
                if not subs:
                    del self._subs[channel]
            lines.append(f":{nick}!{nick}@{nick}.{SERVER} PART #{channel}")
        await self._write(client, lines)
        self._notify()

    async def _privmsg(self, client: _Client, params: list[str]) -> None:
        if len(params) < 2 or client.anonymous:
            return  # Twitch silently ignores chat from anonymous logins
        channel = params[0].lstrip("#").lower()
        self.privmsgs.append((client.index, channel, params[1]))
        if client.caps & {"twitch.tv/tags", "twitch.tv/commands"}:
            await self._write(client, [self._userstate(client, channel)])
        self._notify()

    # -- the firehose ---------------------------------------------------------------------

    def _can_emit(self) -> bool:
        return not self._paused and not self._stopping and bool(self._subs)

    async def _emit_loop(self) -> None:
        loop = asyncio.get_running_loop()
        base_time: float | None = None
        base_count = 0
        while not self.finished:
            if not self._can_emit():
                base_time = None
                await self._changed.wait()
                continue
            n = self.batch_size
            if self.count is not None:
                n = min(n, self.count - self._sent_count)
            rate = self.rate
            if rate is not None:
                now = loop.time()
                if base_time is None:
                    base_time, base_count = now, 0
                due = int((now - base_time) * rate) + 1 - base_count
                if due <= 0:
                    wait = (base_count - (now - base_time) * rate) / rate
                    await asyncio.sleep(max(PACE_TICK_S, wait))
                    continue
                if due > max(rate, self.batch_size) * 2:  # far behind: don't burst to catch up
                    base_time, base_count, due = now, 0, 1
                n = min(n, due)
            if self.prebuilt:
                batch, data = self._take_prepared()
            else:
                batch, data = self._take(n), None
            if not batch:
                await asyncio.sleep(0)  # nothing routable (stale replay/pending): try again
                continue
            base_count += len(batch)
            await self._deliver(batch, data)
            self._notify()
            await asyncio.sleep(0)  # let client commands (PING, JOIN, ...) in between batches
        self._notify()

    def _take_pending(self, n: int) -> list[Message]:
        """Up to ``n`` messages no client could take before: first in line, per channel in
        their old order. Generated ones wait for their channel to be joined again."""
        subs = self._subs
        channels = list(subs)
        out: list[Message] = []
        pending, waiting = self._pending, deque[Message]()
        while pending and len(out) < n:
            msg = pending.popleft()
            if msg.channel in subs:
                out.append(msg)
            elif msg.retarget:
                out.append(msg._replace(channel=channels[self._rr % len(channels)]))
                self._rr += 1
            else:
                waiting.append(msg)
        waiting.extend(pending)
        self._pending = waiting
        return out

    def _take(self, n: int) -> list[Message]:
        subs = self._subs
        channels = list(subs)
        out = self._take_pending(n) if self._pending else []
        replay = self._replay
        if replay is not None:
            while replay and len(out) < n:
                msg = replay.popleft()
                if msg.channel not in subs:
                    msg = msg._replace(channel=channels[self._rr % len(channels)])
                    self._rr += 1
                out.append(msg)
            return out
        need = n - len(out)
        if need <= 0:
            return out
        gen = self.generator
        ts = time.time_ns() // 1_000_000
        if len(channels) == 1:
            channel = channels[0]
            out += [
                Message(channel, line, msg_id, text, False)
                for line, msg_id, text in gen.messages(channel, need, room_id_for(channel), ts)
            ]
            return out
        rr, k = self._rr, len(channels)
        order = [channels[(rr + i) % k] for i in range(need)]
        counts = dict.fromkeys(order, 0)
        for channel in order:
            counts[channel] += 1
        streams = {
            channel: iter(gen.messages(channel, c, room_id_for(channel), ts))
            for channel, c in counts.items()
        }
        for channel in order:
            line, msg_id, text = next(streams[channel])
            out.append(Message(channel, line, msg_id, text, False))
        self._rr = (rr + need) % k
        return out

    def _take_prepared(self) -> tuple[list[Message], bytes | None]:
        """The next prebuilt batch with its tagged wire form (the whole rest of ``count`` is
        built on the first call). Messages left pending by a fault come first, as usual."""
        if self._pending:
            return self._take_pending(self.batch_size), None
        if self._prepared is None:
            prepared: deque[tuple[list[Message], bytes]] = deque()
            assert self.count is not None  # prebuilt needs a count (checked in __init__)
            left = self.count - self._sent_count
            while left > 0:
                batch = self._take(min(self.batch_size, left))
                prepared.append((batch, ("\r\n".join(m.line for m in batch) + "\r\n").encode()))
                left -= len(batch)
            self._prepared = prepared
        if not self._prepared:
            return [], None
        return self._prepared.popleft()

    async def _deliver(self, batch: list[Message], tagged: bytes | None = None) -> None:
        """Write ``batch`` to every subscribed client; record what at least one client got.
        ``tagged``: the batch's wire form with tags, when it was prebuilt."""
        batch_channels = {m.channel for m in batch}
        targets: set[_Client] = set()
        for channel in batch_channels:
            targets |= self._subs.get(channel, set())
        delivered = [False] * len(batch)
        n_delivered = 0
        full: dict[bool, bytes] = {} if tagged is None else {True: tagged}
        for client in sorted(targets, key=lambda c: c.index):
            if not client.receiving:
                continue
            if batch_channels <= client.channels:
                picked = list(range(len(batch)))
            else:
                picked = [i for i, m in enumerate(batch) if m.channel in client.channels]
            if client.budget is not None:
                picked = picked[: client.budget]
            if not picked:
                continue
            tags = client.tags
            if len(picked) == len(batch):
                data = full.get(tags)
                if data is None:
                    lines = (
                        [m.line for m in batch] if tags else [_without_tags(m.line) for m in batch]
                    )
                    data = full[tags] = ("\r\n".join(lines) + "\r\n").encode()
            else:
                lines = [batch[i].line for i in picked]
                if not tags:
                    lines = [_without_tags(line) for line in lines]
                data = ("\r\n".join(lines) + "\r\n").encode()
            try:
                await client.transport.send(data)
            except _CLOSE_ERRORS:
                self._unsubscribe(client)
                continue
            for i in picked:
                if not delivered[i]:
                    delivered[i] = True
                    n_delivered += 1
            if client.budget is not None:
                client.budget -= len(picked)
                if client.budget <= 0:
                    self._fire_fault(client)

        if n_delivered == len(batch):
            done = batch
        else:
            done = [m for m, ok in zip(batch, delivered, strict=True) if ok]
            self._pending.extendleft(
                reversed([m for m, ok in zip(batch, delivered, strict=True) if not ok])
            )
        self._sent_count += len(done)
        if self.record:
            sent = self.sent
            if len(batch_channels) == 1:
                (channel,) = batch_channels
                sent.setdefault(channel, []).extend([(m.msg_id, m.text) for m in done])
            else:
                for m in done:
                    sent.setdefault(m.channel, []).append((m.msg_id, m.text))

    # -- live mode: chat on the clock ----------------------------------------------------

    async def _live_loop(self) -> None:
        loop = asyncio.get_running_loop()
        rate = self.rate
        assert rate is not None
        base: float | None = None
        produced = 0
        while not self.finished and not self._live_stopped:
            if self._paused or self._stopping:
                base = None  # resume starts the clock afresh: a pause produces nothing
                await self._changed.wait()
                continue
            now = loop.time()
            if base is None:
                base, produced = now, 0
            due = int((now - base) * rate) + 1 - produced
            if due > max(rate, self.batch_size) * 2:  # far behind (a stalled loop): no burst
                base, produced, due = now, 0, 1
            if self.count is not None:
                due = min(due, self.count - self._live_count)
            if due > 0:
                due = min(due, self.batch_size)
                await self._produce_live(due)
                produced += due
                self._notify()
            await asyncio.sleep(LIVE_TICK_S)
        self._notify()

    def _live_next(self, ts: int) -> tuple[str, str, str, str, str]:
        """The next live message: ``(channel, command, id, line, text)``. Chat goes
        round-robin over the channels; events (every Nth message) in turn, each round of the
        three kinds to the next channel, so every channel gets chat and every kind."""
        seq = self._live_count
        self._live_count = seq + 1
        channels = self.live_channels
        every = self.live_events_every
        events = 0 if every is None else (seq + 1) // every
        if every is not None and (seq + 1) % every == 0:
            n = events - 1
            channel = channels[n // len(LIVE_EVENTS) % len(channels)]
            return self._live_event(channel, LIVE_EVENTS[n % len(LIVE_EVENTS)], ts)
        channel = channels[(seq - events) % len(channels)]
        line, msg_id, text = self.generator.messages(channel, 1, room_id_for(channel), ts)[0]
        login = line.partition(" :")[2].partition("!")[0]
        self._last_privmsg[channel] = (msg_id, login, text)
        return channel, "PRIVMSG", msg_id, line, text

    def _live_event(self, channel: str, kind: str, ts: int) -> tuple[str, str, str, str, str]:
        # Strictly increasing per channel, so (room, tmi-sent-ts, target) never repeats.
        ts = max(ts, self._event_ts.get(channel, 0) + 1)
        self._event_ts[channel] = ts
        gen = self.generator
        if kind == "USERNOTICE":
            line, msg_id = gen.sub(channel, ts)
            return channel, kind, msg_id, line, ""
        if kind == "CLEARCHAT":
            line, target = gen.timeout(channel, ts)
            return channel, kind, target, line, ""
        target, login, text = self._last_privmsg.pop(channel, ("", "", ""))
        if not target:  # nothing said here yet: a message deleted before we saw it
            target, login, text = gen.new_id(), "viewer", "deleted"
        return channel, kind, target, clearmsg_line(channel, login, target, text, ts), text

    async def _produce_live(self, n: int) -> None:
        ts = time.time_ns() // 1_000_000
        at = time.monotonic()
        batch = [self._live_next(ts) for _ in range(n)]
        receivers = [0] * n
        targets: set[_Client] = set()
        for channel in {m[0] for m in batch}:
            targets |= self._subs.get(channel, set())
        for client in sorted(targets, key=lambda c: c.index):
            for i in await self._send_live(client, batch):
                receivers[i] += 1
        self._record_live(batch, receivers, at)

    async def _send_live(
        self, client: _Client, batch: list[tuple[str, str, str, str, str]]
    ) -> list[int]:
        """Write the client's share of ``batch``; the indices it was written. Membership is
        read here, not when the batch was made: a PART that came in meanwhile counts."""
        if not client.receiving:
            return []
        picked = [i for i, m in enumerate(batch) if m[0] in client.channels]
        if not picked:
            return []
        lines = [batch[i][3] for i in picked]
        if not client.tags:
            lines = [_without_tags(line) for line in lines]
        try:
            async with asyncio.timeout(LIVE_SEND_TIMEOUT_S):
                await client.transport.send(("\r\n".join(lines) + "\r\n").encode())
        except _CLOSE_ERRORS:
            self._unsubscribe(client)
            return []
        except TimeoutError:  # a client that does not read: dropped, what it had is lost
            self._unsubscribe(client)
            client.transport.abort()
            return []
        return picked

    def _record_live(
        self, batch: list[tuple[str, str, str, str, str]], receivers: list[int], at: float
    ) -> None:
        heard = 0
        for (channel, command, msg_id, line, text), got in zip(batch, receivers, strict=True):
            if got:
                heard += 1
                if self.record:
                    self.sent.setdefault(channel, []).append((msg_id, text))
            if self.record:
                self.live_log.append(LiveMessage(msg_id, channel, command, line, got, at))
        self._sent_count += heard
        self._unheard_count += len(batch) - heard

    def _fire_fault(self, client: _Client) -> None:
        if client.fault == "reconnect" and self.faults.reconnect_overlap:
            client.budget = None  # chat keeps flowing until the connection closes
            self._spawn(self._reconnect(client), f"chat-simulator-reconnect-{client.index}")
            return
        self._unsubscribe(client)
        if client.fault == "drop":
            self._spawn(client.transport.close(abrupt=True), f"chat-simulator-drop-{client.index}")
        else:
            self._spawn(self._reconnect(client), f"chat-simulator-reconnect-{client.index}")

    async def _reconnect(self, client: _Client) -> None:
        with contextlib.suppress(*_CLOSE_ERRORS):
            await self._write(client, [f":{SERVER} RECONNECT"])
            await asyncio.sleep(self.faults.reconnect_close_delay)
        self._unsubscribe(client)
        await client.transport.close()


def _select_subprotocol(
    connection: ServerConnection, subprotocols: Sequence[Subprotocol]
) -> Subprotocol | None:
    # tmi.js offers "irc" and aborts unless it is echoed; other clients offer nothing.
    return Subprotocol("irc") if "irc" in subprotocols else None


def _only_root_path(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.split("?", 1)[0] in ("", "/"):
        return None
    return Response(404, "Not Found", Headers([("Content-Type", "text/plain")]), b"Not Found\n")
