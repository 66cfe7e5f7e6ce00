"""The Twitch IRC connection: log in, join, read, answer PING, and reconnect forever.

Lines flow one way: transport -> ``parse_line`` -> typed message -> ``sink`` (the pipeline).
Control messages (PING, RECONNECT, JOIN echoes, NOTICEs) also update the connection here.
Nothing a single line does can stop the read loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable

from ingress_egress.config import IrcEndpoint
from ingress_egress.credentials import CredentialsError, CredentialsProvider
from ingress_egress.protocol import IrcParseError, parse_line
from ingress_egress.sources.irc.backoff import Backoff
from ingress_egress.sources.irc.transport import LineTransport, TransportClosed, open_transport
from ingress_egress.status import ChatState, Counters, ErrorLog
from ingress_egress.twitch.messages import (
    Capability,
    Membership,
    Notice,
    Numeric,
    Ping,
    Pong,
    Reconnect,
    Roomstate,
    TwitchMessage,
    from_irc,
)

log = logging.getLogger("ingress_egress.irc")

Sink = Callable[[TwitchMessage, float], None]
TransportFactory = Callable[[IrcEndpoint, float], Awaitable[LineTransport]]

CAPABILITIES = "twitch.tv/tags twitch.tv/commands"
MAX_LINE_BYTES = 510  # IRC's 512 minus CRLF
# NOTICE msg-ids that mean "this channel cannot be joined", reported per channel.
CHANNEL_FAILURES = frozenset(
    {
        "msg_channel_suspended",
        "msg_banned",
        "msg_requires_verified_phone_number",
        "msg_verified_email",
        "tos_ban",
        "invalid_user",
    }
)


class JoinLimiter:
    """Sliding window of JOINs per identity (Twitch: 20 per 10 s; 2000 for verified bots)."""

    def __init__(self, limit: int = 20, window_s: float = 10.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._sent: deque[float] = deque()

    def available(self, now: float) -> int:
        while self._sent and now - self._sent[0] >= self.window_s:
            self._sent.popleft()
        return self.limit - len(self._sent)

    def wait_s(self, now: float) -> float:
        return 0.0 if self.available(now) > 0 else self.window_s - (now - self._sent[0])

    def record(self, now: float, count: int) -> None:
        self._sent.extend([now] * count)


def join_lines(channels: list[str]) -> list[str]:
    """``JOIN #a,#b,...`` lines, each within IRC's line limit."""
    lines, batch, size = [], [], len("JOIN ")
    for channel in channels:
        item = f"#{channel}"
        if batch and size + len(item) + 1 > MAX_LINE_BYTES:
            lines.append("JOIN " + ",".join(batch))
            batch, size = [], len("JOIN ")
        batch.append(item)
        size += len(item) + 1
    if batch:
        lines.append("JOIN " + ",".join(batch))
    return lines


class TwitchIrcClient:
    def __init__(
        self,
        *,
        endpoint: IrcEndpoint,
        channels: tuple[str, ...],
        login: str,
        credentials: CredentialsProvider | None,
        sink: Sink,
        state: ChatState,
        counters: Counters,
        errors: ErrorLog,
        backoff: Backoff,
        keepalive_idle_s: float = 30.0,
        pong_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        join_limiter: JoinLimiter | None = None,
        transport_factory: TransportFactory = open_transport,
    ) -> None:
        self.endpoint = endpoint
        self.channels = channels
        self.login = login
        self.credentials = credentials
        self.sink = sink
        self.state = state
        self.counters = counters
        self.errors = errors
        self.backoff = backoff
        self.keepalive_idle_s = keepalive_idle_s
        self.pong_timeout_s = pong_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.join_limiter = join_limiter or JoinLimiter()
        self._open = transport_factory
        self._transport: LineTransport | None = None
        self._stopping = asyncio.Event()
        self._nick = ""
        self._last_read = 0.0
        self._ping_sent_at: float | None = None
        self._reconnect_now = False
        self._login_failures = 0
        self._invalid_before = 0  # invalid-UTF-8 reads on earlier connections
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._control: dict[type, Callable[[object], None]] = {
            Ping: self._on_ping,
            Pong: self._on_pong,
            Reconnect: self._on_reconnect,
            Membership: self._on_membership,
            Roomstate: self._on_roomstate,
            Notice: self._on_notice,
            Numeric: self._on_numeric,
            Capability: self._on_capability,
        }

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and read until ``stop()``; every disconnect leads to a reconnect."""
        while not self._stopping.is_set():
            started = time.monotonic()
            reason = "connection closed"
            try:
                await self._session()
            except TransportClosed as error:
                reason = str(error)
            except CredentialsError as error:
                reason = f"credentials unavailable ({error.code})"
                self.errors.add(error.code, str(error))
            except (OSError, TimeoutError) as error:
                reason = f"connect failed: {type(error).__name__}: {error}"
            except Exception as error:
                reason = f"unexpected {type(error).__name__}: {error}"
                log.exception("irc session crashed; reconnecting")
            finally:
                await self._end_session()
            if self._stopping.is_set():
                break
            self.backoff.connection_ended(time.monotonic() - started)
            delay = random.uniform(0, 0.2) if self._reconnect_now else self.backoff.next_delay()
            self._reconnect_now = False
            self.errors.add("disconnected", reason)
            log.warning("twitch irc: %s; reconnecting in %.2fs", reason, delay)
            self.state.mark_reconnect()
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                pass

    @property
    def last_read_at(self) -> float | None:
        """Monotonic time of the last read from Twitch on this connection (None when down)."""
        return self._last_read if self._transport is not None else None

    async def stop(self) -> None:
        self._stopping.set()
        transport = self._transport
        if transport is not None:
            await transport.close()

    # -- one connection -------------------------------------------------------------

    async def _session(self) -> None:
        login = await self._login_lines()  # no socket is opened without a usable token
        transport = await self._open(self.endpoint, self.connect_timeout_s)
        self._transport = transport
        self.state.server = str(self.endpoint)
        await transport.send_lines([f"CAP REQ :{CAPABILITIES}", *login])
        self._last_read = time.monotonic()
        self._ping_sent_at = None
        self._spawn(self._keepalive(transport))
        while True:
            lines = await transport.read_lines()
            self._last_read = time.monotonic()
            self._handle(lines, time.time())
            self.counters.invalid_utf8 = self._invalid_before + transport.invalid_utf8

    def _handle(self, lines: list[str], received_at: float) -> None:
        control = self._control
        sink = self.sink
        for line in lines:
            try:
                typed = from_irc(parse_line(line))
                handler = control.get(type(typed))
                if handler is not None:
                    handler(typed)
                sink(typed, received_at)
            except IrcParseError as error:
                self.counters.parse_errors += 1
                self.errors.add("parse_error", error.reason)
                log.warning("unparseable line (%s): %r", error.reason, line[:512])
            except Exception:
                self.counters.parse_errors += 1
                self.errors.add("handler_error", "a line could not be handled")
                log.exception("failed to handle line: %r", line[:512])

    async def _login_lines(self) -> list[str]:
        if not self.login or self.credentials is None:
            self._nick = f"justinfan{random.randint(10000, 99999)}"
            return ["PASS SCHMOOPIIE", f"NICK {self._nick}"]
        auth = await self.credentials.get_chat_auth(self.login)
        self._nick = auth.login or self.login
        return [f"PASS oauth:{auth.access_token}", f"NICK {self._nick}"]

    async def _end_session(self) -> None:
        for task in list(self._session_tasks):
            task.cancel()
        if self._session_tasks:
            await asyncio.gather(*self._session_tasks, return_exceptions=True)
        self._session_tasks.clear()
        transport, self._transport = self._transport, None
        if transport is not None:
            self._invalid_before += transport.invalid_utf8
            await transport.close()
        self.state.connected = False
        self.state.logged_in = False
        self.state.connected_since = None
        self.state.joined.clear()

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._session_tasks.add(task)
        task.add_done_callback(self._session_tasks.discard)

    async def _send(self, *lines: str) -> None:
        transport = self._transport
        if transport is not None:
            try:
                await transport.send_lines(list(lines))
            except TransportClosed:
                pass  # the read loop sees the close and reconnects

    def _send_soon(self, *lines: str) -> None:
        self._spawn(self._send(*lines))

    async def _close_transport(self) -> None:
        transport = self._transport
        if transport is not None:
            await transport.close()

    # -- keepalive and joins ----------------------------------------------------------

    async def _keepalive(self, transport: LineTransport) -> None:
        """PING after a quiet period; no PONG in time means a dead (half-open) connection."""
        tick = min(1.0, self.keepalive_idle_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if self._ping_sent_at is not None:
                if now - self._ping_sent_at > self.pong_timeout_s:
                    self.errors.add("keepalive_timeout", "no PONG from Twitch in time")
                    log.warning("twitch irc: no PONG in %.0fs; reconnecting", self.pong_timeout_s)
                    await transport.close()
                    return
            elif now - self._last_read > self.keepalive_idle_s:
                self._ping_sent_at = now
                await self._send("PING :ingress-egress")

    async def _join_all(self) -> None:
        remaining = [c for c in self.channels if c not in self.state.failed_channels]
        while remaining:
            now = time.monotonic()
            room = self.join_limiter.available(now)
            if room <= 0:
                await asyncio.sleep(self.join_limiter.wait_s(now))
                continue
            batch, remaining = remaining[:room], remaining[room:]
            self.join_limiter.record(now, len(batch))
            await self._send(*join_lines(batch))

    # -- control messages -------------------------------------------------------------

    def _on_ping(self, ping: Ping) -> None:  # type: ignore[override]
        self._send_soon(f"PONG :{ping.argument}")

    def _on_pong(self, _pong: Pong) -> None:
        self._ping_sent_at = None

    def _on_reconnect(self, _msg: Reconnect) -> None:
        log.info("twitch irc: server asked to RECONNECT")
        self._reconnect_now = True
        self._spawn(self._close_transport())

    def _on_membership(self, msg: Membership) -> None:
        if msg.login != self._nick.lower():
            return
        if msg.joined:
            self.state.joined.add(msg.channel)
            self.state.failed_channels.pop(msg.channel, None)
        else:
            self.state.joined.discard(msg.channel)

    def _on_roomstate(self, msg: Roomstate) -> None:
        if msg.is_full:
            self.state.joined.add(msg.channel)

    def _on_notice(self, msg: Notice) -> None:
        if msg.is_login_failure:
            self._login_failed(msg.text)
        elif msg.channel and msg.notice_id in CHANNEL_FAILURES:
            self.state.failed_channels[msg.channel] = msg.notice_id
            self.state.joined.discard(msg.channel)
            self.errors.add(msg.notice_id, f"#{msg.channel}: {msg.text}")
            log.warning(
                "twitch irc: cannot join #%s: %s",
                msg.channel,
                msg.notice_id,
                extra={"channel": msg.channel, "errorCode": msg.notice_id},
            )

    def _login_failed(self, text: str) -> None:
        self._login_failures += 1
        self.errors.add("login_failed", text)
        log.error(
            "twitch irc: login rejected: %s",
            text,
            extra={"userLogin": self._nick, "errorCode": "login_failed"},
        )
        if self.credentials is not None and self._login_failures == 1:
            # Force one refresh, then reconnect at once; after that, back off as usual.
            self._spawn(self._refresh_then_close())
        else:
            self._spawn(self._close_transport())

    async def _refresh_then_close(self) -> None:
        assert self.credentials is not None
        try:
            await self.credentials.force_refresh(self.login)
            self._reconnect_now = True
        except CredentialsError as error:
            self.errors.add(error.code, str(error))
        await self._close_transport()

    def _on_numeric(self, msg: Numeric) -> None:
        if msg.code == "001":
            self._login_failures = 0
            self.state.connected = True
            self.state.logged_in = True
            self.state.connected_since = time.monotonic()
            log.info("twitch irc: logged in as %s on %s", self._nick, self.endpoint)
            self._spawn(self._join_all())

    def _on_capability(self, msg: Capability) -> None:
        if msg.subcommand == "NAK":
            self.errors.add("cap_nak", " ".join(msg.capabilities))
            log.error("twitch irc: capabilities refused: %s", msg.capabilities)
