"""One connection of the Twitch chat pool: it logs in, joins its channels, reads,
answers PING, and reconnects forever.

Each read's lines go through the source's codec in one call (``codec.decode``: chat
lines straight to envelopes, every other line to its typed message and, for events, its
envelope); the envelopes go to ``sink`` (the pipeline's ``accept_many``), and the control
messages (PING, RECONNECT, JOIN echoes, NOTICEs, ROOMSTATE) update the connection here.
During a RECONNECT overlap the envelopes pass the duplicate filter first (``dedup.py``):
one path for every read. Nothing a single line does can stop the read loop.

Each physical connection is a ``Session``. Normally a client has one; on RECONNECT it opens
a replacement session, joins it, and only then retires the old one (make-before-break),
dropping the overlap's duplicates (``dedup.py``). A connection that breaks without warning
is replaced after a jittered backoff (break-before-make: there is nothing left to read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Set
from typing import Any, Protocol

from ingress_egress.credentials import CredentialsError, CredentialsProvider
from ingress_egress.envelope import OutboundMessage
from ingress_egress.protocol import IrcParseError
from ingress_egress.protocol.connection import TransportClosed
from ingress_egress.protocol.endpoint import IrcEndpoint
from ingress_egress.retry import Backoff, random_pause
from ingress_egress.sources.base import SelfMessageHook
from ingress_egress.sources.irc.codec import IrcCodec
from ingress_egress.sources.irc.dedup import DEFAULT_CAPACITY, first_copies
from ingress_egress.sources.irc.joins import (
    ConnectGate,
    JoinLimiter,
    join_lines,
    part_lines,
)
from ingress_egress.sources.irc.transport import (
    MAX_INCOMING_LINE_BYTES,
    LineTransport,
    open_transport,
)
from ingress_egress.sources.recent import RecentKeys
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
    Unknown,
)

__all__ = [
    "CHANNEL_FAILURES",
    "EnvelopeSink",
    "JoinLimiter",
    "Session",
    "TwitchIrcClient",
    "join_lines",
    "part_lines",
]

log = logging.getLogger("ingress_egress.irc")


class EnvelopeSink(Protocol):
    """Where a read's envelopes go, in receipt order (the pipeline)."""

    def accept_many(self, envelopes: list[OutboundMessage], *, chat_only: bool = False) -> None: ...


TransportFactory = Callable[[IrcEndpoint, float], Awaitable[LineTransport]]
# (channel, Twitch message id) of each message the bot itself sent, as the read side saw it
# (the codec's ``Decoded.self_messages``): egress/echo.py confirms sends with them.

CAPABILITIES = "twitch.tv/tags twitch.tv/commands"
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
# After the replacement joined everything, keep reading the old connection this long: what
# Twitch had already routed to it still arrives, and copies are dropped by message id.
LOG_LINE_CHARS = 160  # how much of a bad line a log record quotes
UNKNOWN_LOGGED = 32  # distinct unknown commands logged by name; all are counted
OVERLAP_HOLD_S = 1.0
RETIRE_GRACE_S = 5.0  # after QUIT, how long the old connection may take to say goodbye
DEDUP_GRACE_S = 5.0  # duplicates may still arrive this long after the overlap ends


class Session:
    """One physical IRC connection and the channels it has joined or is joining.

    Its joined set is the one record of what this connection confirmed: every change goes
    through ``confirm_joined``/``lose_joined``/``lose_all_joined``, which also tell the
    shared ``ChatState`` (counted per connection there)."""

    def __init__(self, number: int, transport: LineTransport, state: ChatState) -> None:
        self.number = number
        self.transport = transport
        self._state = state
        self.nick = ""
        self.logged_in = False
        self.since: float | None = None  # monotonic time of the welcome (001)
        self.last_read = time.monotonic()
        self.ping_sent_at: float | None = None
        self._joined: set[str] = set()
        self.pending: dict[str, float] = {}  # channel -> when its JOIN was sent
        self.queued: dict[str, None] = {}  # channels waiting for a JOIN slot, in order
        self.wake = asyncio.Event()  # the joiner has work
        self.settled = asyncio.Event()  # every channel joined or failed (replacement ready)
        self.finished = asyncio.Event()  # the reader ended
        self.retiring = False  # RECONNECT received or replaced: no new JOINs here
        self.successor: Session | None = None
        self.replacing: asyncio.Task[None] | None = None
        self.end_reason = "connection closed"
        self.invalid_counted = 0  # invalid-UTF-8 reads already added to the counters
        self.oversized_counted = 0  # discarded oversized lines already added to the counters
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def joined(self) -> Set[str]:
        return self._joined

    def confirm_joined(self, channel: str) -> None:
        if channel not in self._joined:
            self._joined.add(channel)
            self._state.confirm_joined(channel)

    def lose_joined(self, channel: str) -> None:
        if channel in self._joined:
            self._joined.discard(channel)
            self._state.lose_joined(channel)

    def lose_all_joined(self) -> None:
        for channel in self._joined:
            self._state.lose_joined(channel)
        self._joined.clear()


class TwitchIrcClient:
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
        backoff: Backoff,
        keepalive_idle_s: float = 30.0,
        pong_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        join_limiter: JoinLimiter | None = None,
        connect_gate: ConnectGate | None = None,
        join_timeout_s: float = 15.0,
        failed_retry_s: float = 300.0,
        dedup_capacity: int = DEFAULT_CAPACITY,
        name: str = "irc-0",
        on_change: Callable[[], None] | None = None,
        transport_factory: TransportFactory = open_transport,
        on_self_message: SelfMessageHook | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.channels: dict[str, None] = dict.fromkeys(channels)
        self.login = login
        self.credentials = credentials
        self.codec = codec
        self.sink = sink
        self.state = state
        self.counters = counters
        self.errors = errors
        self.backoff = backoff
        self.keepalive_idle_s = keepalive_idle_s
        self.pong_timeout_s = pong_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.join_limiter = join_limiter or JoinLimiter()
        self.connect_gate = connect_gate or ConnectGate(0.0)
        self.join_timeout_s = join_timeout_s
        self.failed_retry_s = failed_retry_s
        self.dedup_capacity = dedup_capacity
        self.name = name
        self._on_change = on_change or (lambda: None)
        self._on_self_message = on_self_message
        self._open = transport_factory
        self.current: Session | None = None
        self.reconnects = 0
        self._stopping = asyncio.Event()
        self._sessions_opened = 0
        self._login_failures = 0
        self._reconnect_now = False
        self._nick = ""
        self._retry_at: dict[str, float] = {}  # failed channel -> when to try again
        self._dedup: RecentKeys | None = None
        self._dedup_until = 0.0  # monotonic; 0 while an overlap is still open
        self._tasks: set[asyncio.Task[None]] = set()  # client-level (replacements)
        # Keyed by the message's exact type; each handler takes that type (hence Any here).
        self._control: dict[type, Callable[[Session, Any], None]] = {
            Ping: self._on_ping,
            Pong: self._on_pong,
            Reconnect: self._on_reconnect,
            Membership: self._on_membership,
            Roomstate: self._on_roomstate,
            Notice: self._on_notice,
            Numeric: self._on_numeric,
            Capability: self._on_capability,
            Unknown: self._on_unknown,
        }
        self._unknown_seen: set[str] = set()  # commands already logged (bounded)

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and read until ``stop()``; every disconnect leads to a reconnect."""
        while not self._stopping.is_set():
            started = time.monotonic()
            reason = "connection closed"
            try:
                session: Session | None = await self._start_session()
                # Follow the chain of sessions: a RECONNECT hands over to its replacement.
                while session is not None:
                    self.current = session
                    self._on_change()
                    await session.finished.wait()
                    reason = session.end_reason
                    session = await self._successor_of(session)
                    if session is not None:
                        log.info("twitch irc %s: replacement connection took over", self.name)
            except CredentialsError as error:
                reason = f"credentials unavailable ({error.code})"
                self.errors.add(error.code, str(error))
            except (OSError, TimeoutError, TransportClosed) as error:
                reason = f"connect failed: {type(error).__name__}: {error}"
            except Exception as error:
                reason = f"unexpected {type(error).__name__}: {error}"
                log.exception("irc session crashed; reconnecting")
            self.current = None
            self._on_change()
            if self._stopping.is_set():
                break
            self.backoff.connection_ended(time.monotonic() - started)
            delay = random_pause(0.0, 0.2) if self._reconnect_now else self.backoff.next_delay()
            self._reconnect_now = False
            self.errors.add("disconnected", reason)
            log.warning("twitch irc %s: %s; reconnecting in %.2fs", self.name, reason, delay)
            self._count_reconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def stop(self) -> None:
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for session in self.sessions():
            await self._close(session)

    @property
    def connected(self) -> bool:
        return self.current is not None and self.current.logged_in

    @property
    def last_read_at(self) -> float | None:
        """Monotonic time of the last read from Twitch (None when down)."""
        current = self.current
        return current.last_read if current is not None else None

    def sessions(self) -> list[Session]:
        """The live connections: the current one and, during an overlap, its replacement."""
        out: list[Session] = []
        session = self.current
        while session is not None and len(out) < 3:
            if not session.finished.is_set():
                out.append(session)
            session = session.successor
        return out

    def _count_reconnect(self) -> None:
        self.reconnects += 1
        self.state.mark_reconnect()

    # -- channels -------------------------------------------------------------------

    def add_channels(self, channels: list[str]) -> None:
        fresh = [c for c in channels if c not in self.channels]
        self.channels.update(dict.fromkeys(fresh))
        for session in self.sessions():
            if session.logged_in and not session.retiring:
                self._queue(session, fresh)

    def remove_channels(self, channels: list[str]) -> None:
        gone = [c for c in channels if c in self.channels]
        for channel in gone:
            del self.channels[channel]
            self._retry_at.pop(channel, None)
        for session in self.sessions():
            to_part = [c for c in gone if c in session.joined or c in session.pending]
            for channel in gone:
                session.queued.pop(channel, None)
                session.pending.pop(channel, None)
                session.lose_joined(channel)
            if to_part:
                self._send_soon(session, *part_lines(to_part))

    def _queue(self, session: Session, channels: list[str]) -> None:
        for channel in channels:
            if channel not in session.joined and channel not in session.pending:
                session.queued[channel] = None
        if session.queued:
            session.wake.set()

    # -- one connection -------------------------------------------------------------

    async def _start_session(self) -> Session:
        """Open, log in (lines sent; the welcome arrives later) and start reading."""
        login = await self._login_lines()  # no socket is opened without a usable token
        await self.connect_gate.wait()
        if self._stopping.is_set():
            raise TransportClosed("stopped")
        transport = await self._open(self.endpoint, self.connect_timeout_s)
        if self._stopping.is_set():  # stopped while connecting: leave nothing behind
            await transport.close()
            raise TransportClosed("stopped")
        self._sessions_opened += 1
        session = Session(self._sessions_opened, transport, self.state)
        session.nick = self._nick
        self.state.set_server(str(self.endpoint))
        reader = asyncio.ensure_future(self._read(session))
        self._tasks.add(reader)
        reader.add_done_callback(self._tasks.discard)
        await self._send(session, f"CAP REQ :{CAPABILITIES}", *login)
        return session

    async def _read(self, session: Session) -> None:
        transport = session.transport
        self._spawn(session, self._keepalive(session))
        self._spawn(session, self._joiner(session))
        try:
            while True:
                lines = await transport.read_lines()
                session.last_read = time.monotonic()
                self._handle(session, lines, time.time())
                if transport.invalid_utf8 != session.invalid_counted:
                    self.counters.invalid_utf8 += transport.invalid_utf8 - session.invalid_counted
                    session.invalid_counted = transport.invalid_utf8
                if transport.oversized_lines != session.oversized_counted:
                    self._count_oversized(session)
                # One read per turn of the loop: buffered bytes would otherwise be read on
                # without a yield, and the sender, acks and HTTP wait behind the burst.
                await asyncio.sleep(0)
        except TransportClosed as error:
            if session.end_reason == "connection closed":  # else: we closed it, and said why
                session.end_reason = str(error)
        except (OSError, TimeoutError) as error:
            session.end_reason = f"{type(error).__name__}: {error}"
        except asyncio.CancelledError:
            session.end_reason = "stopped"
            raise
        except Exception as error:  # never silently: the run loop reconnects
            session.end_reason = f"unexpected {type(error).__name__}: {error}"
            log.exception("irc read loop crashed; reconnecting")
        finally:
            await self._end_session(session)

    def _handle(self, session: Session, lines: list[str], received_at: float) -> None:
        """One read: its envelopes to the sink in line order (chat-only reads need no
        per-line Python at all), then its control messages and errors. A RECONNECT inside
        the read starts de-duplication only for later reads, which is enough: chat behind it
        in the same read was sent before the replacement connection existed, so it cannot
        arrive there too."""
        try:
            decoded = self.codec.decode(lines, received_at)
            envelopes = decoded.envelopes
            if self._dedup is not None:
                envelopes = self._first_copies(envelopes)
            self.sink.accept_many(envelopes, chat_only=decoded.chat_only)
        except Exception:
            self.counters.parse_errors += len(lines)
            self.errors.add("handler_error", f"a read of {len(lines)} lines could not be handled")
            log.exception("failed to handle a read of %d lines", len(lines))
            return
        if decoded.self_messages and self._on_self_message is not None:
            self._report_self_messages(decoded.self_messages)
        if decoded.chat_only:
            return
        for line, error in decoded.errors:
            self._unhandled(line, error)
        control = self._control
        for line, message in decoded.control:
            handler = control.get(type(message))
            if handler is not None:
                try:
                    handler(session, message)
                except Exception as error:
                    self._unhandled(line, error)

    def _report_self_messages(self, messages: tuple[tuple[str, str], ...]) -> None:
        hook = self._on_self_message
        assert hook is not None
        for channel, message_id in messages:
            try:
                hook(channel, message_id)
            except Exception:  # the watcher's trouble must not cost the read loop
                self.errors.add("handler_error", "a self message could not be reported")
                log.exception("on_self_message failed for %s in #%s", message_id, channel)

    def _first_copies(self, envelopes: list[OutboundMessage]) -> list[OutboundMessage]:
        """During a RECONNECT overlap: each event once, whichever connection wins."""
        dedup = self._dedup
        assert dedup is not None
        if self._dedup_until and time.monotonic() > self._dedup_until:
            self._dedup = None  # grace over: memory freed, no filter from now on
            return envelopes
        kept = first_copies(dedup, envelopes)
        self.state.count_duplicates(len(envelopes) - len(kept))
        return kept

    def _unhandled(self, line: str, error: Exception) -> None:
        self.counters.parse_errors += 1
        if isinstance(error, IrcParseError):
            self.errors.add("parse_error", error.reason)
            log.warning("unparseable line (%s): %r", error.reason, line[:LOG_LINE_CHARS])
        else:
            self.errors.add("handler_error", "a line could not be handled")
            log.error(
                "failed to handle line (%r): %r", error, line[:LOG_LINE_CHARS], exc_info=error
            )

    async def _login_lines(self) -> list[str]:
        if not self.login or self.credentials is None:
            self._nick = f"justinfan{random.randint(10000, 99999)}"
            return ["PASS SCHMOOPIIE", f"NICK {self._nick}"]
        auth = await self.credentials.get_chat_auth(self.login)
        self._nick = auth.login or self.login
        return [f"PASS oauth:{auth.access_token}", f"NICK {self._nick}"]

    async def _end_session(self, session: Session) -> None:
        for task in list(session.tasks):
            task.cancel()
        if session.tasks:
            await asyncio.gather(*session.tasks, return_exceptions=True)
        session.tasks.clear()
        with contextlib.suppress(Exception):
            await session.transport.close()
        session.lose_all_joined()
        session.pending.clear()
        session.queued.clear()
        session.logged_in = False
        if self._dedup is not None and session.retiring:
            self._dedup_until = time.monotonic() + DEDUP_GRACE_S
        session.finished.set()
        self._on_change()

    async def _close(self, session: Session) -> None:
        with contextlib.suppress(Exception):
            await session.transport.close()

    def _spawn(self, session: Session, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        session.tasks.add(task)
        task.add_done_callback(session.tasks.discard)

    async def _send(self, session: Session, *lines: str) -> None:
        try:
            await session.transport.send_lines(list(lines))
        except TransportClosed:
            pass  # the read loop sees the close and reconnects

    def _send_soon(self, session: Session, *lines: str) -> None:
        self._spawn(session, self._send(session, *lines))

    # -- keepalive, joins, retries ----------------------------------------------------

    async def _keepalive(self, session: Session) -> None:
        """PING after a quiet period; no PONG in time means a dead (half-open) connection.
        The same tick retries JOINs Twitch did not confirm in time and failed channels."""
        tick = min(1.0, self.keepalive_idle_s / 4, self.join_timeout_s / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if session.ping_sent_at is not None:
                if now - session.ping_sent_at > self.pong_timeout_s:
                    self.errors.add("keepalive_timeout", "no PONG from Twitch in time")
                    log.warning(
                        "twitch irc %s: no PONG in %.0fs; reconnecting",
                        self.name,
                        self.pong_timeout_s,
                    )
                    session.end_reason = "keepalive timeout"
                    await session.transport.close()
                    return
            elif now - session.last_read > self.keepalive_idle_s:
                session.ping_sent_at = now
                await self._send(session, "PING :ingress-egress")
            if session.logged_in and not session.retiring:
                self._retry_due(session, now)

    def _retry_due(self, session: Session, now: float) -> None:
        late = [c for c, sent in session.pending.items() if now - sent > self.join_timeout_s]
        for channel in late:
            del session.pending[channel]
            self.errors.add("join_timeout", f"#{channel}: JOIN not confirmed; retrying")
        due = [c for c, at in self._retry_at.items() if at <= now]
        for channel in due:
            del self._retry_at[channel]
        if late or due:
            self._queue(session, [c for c in (*late, *due) if c in self.channels])

    async def _joiner(self, session: Session) -> None:
        """Send queued JOINs in batches, as fast as the shared per-identity limiter allows."""
        while True:
            await session.wake.wait()
            session.wake.clear()
            while session.queued:
                granted = await self.join_limiter.acquire(len(session.queued))
                batch = list(session.queued)[:granted]
                if not batch:
                    continue
                now = time.monotonic()
                for channel in batch:
                    del session.queued[channel]
                    session.pending[channel] = now
                await self._send(session, *join_lines(batch))

    def _check_settled(self, session: Session) -> None:
        if session.logged_in and not session.queued and not session.pending:
            session.settled.set()

    # -- RECONNECT: make before break ---------------------------------------------------

    async def _replace(self, old: Session) -> None:
        """Open and join a replacement, then retire ``old`` (reading it until it closes)."""
        try:
            new = await self._start_session()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.errors.add("replacement_failed", f"{type(error).__name__}: {error}")
            log.warning("twitch irc %s: replacement connection failed: %s", self.name, error)
            self._reconnect_now = True
            return
        old.successor = new
        self._on_change()
        dropped_before = self.state.duplicates_dropped
        waited = asyncio.ensure_future(new.settled.wait())
        ended = asyncio.ensure_future(new.finished.wait())
        try:
            await asyncio.wait(
                {waited, ended, asyncio.ensure_future(old.finished.wait())},
                timeout=self.join_timeout_s * 2,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waited.cancel()
            ended.cancel()
        if new.finished.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(old.finished.wait(), OVERLAP_HOLD_S)
        if not old.finished.is_set():
            # QUIT and read on: everything Twitch wrote before its goodbye still arrives.
            await self._send(old, "QUIT")
            try:
                await asyncio.wait_for(old.finished.wait(), RETIRE_GRACE_S)
            except TimeoutError:
                await old.transport.close()
        log.info(
            "twitch irc %s: RECONNECT overlap over; %d duplicate events dropped",
            self.name,
            self.state.duplicates_dropped - dropped_before,
        )

    async def _successor_of(self, old: Session) -> Session | None:
        """The session that takes over from ``old``, once it is known (None: reconnect)."""
        if old.replacing is not None and not old.replacing.done() and old.successor is None:
            while old.successor is None and not old.replacing.done():
                await asyncio.sleep(0.01)
        new = old.successor
        if new is None or new.finished.is_set():
            if self._dedup is not None:
                self._dedup_until = time.monotonic() + DEDUP_GRACE_S
            return None
        return new

    # -- control messages -------------------------------------------------------------

    def _on_ping(self, session: Session, ping: Ping) -> None:
        self._send_soon(session, f"PONG :{ping.argument}")

    def _on_pong(self, session: Session, _pong: Pong) -> None:
        session.ping_sent_at = None

    def _on_reconnect(self, session: Session, _msg: Reconnect) -> None:
        if session.retiring or self._stopping.is_set():
            return
        log.info("twitch irc %s: server asked to RECONNECT; opening a replacement", self.name)
        session.retiring = True
        self._count_reconnect()
        self._dedup = RecentKeys(self.dedup_capacity)
        self._dedup_until = 0.0
        task = asyncio.ensure_future(self._replace(session))
        session.replacing = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_membership(self, session: Session, msg: Membership) -> None:
        if msg.login != session.nick.lower():
            return
        if msg.joined:
            self._confirm(session, msg.channel)
        else:
            session.lose_joined(msg.channel)

    def _on_roomstate(self, session: Session, msg: Roomstate) -> None:
        if msg.is_full:
            self._confirm(session, msg.channel)

    def _confirm(self, session: Session, channel: str) -> None:
        session.pending.pop(channel, None)
        session.queued.pop(channel, None)
        if channel not in self.channels:
            return  # removed while the JOIN was on its way: the PART follows
        if channel not in session.joined:
            session.confirm_joined(channel)
            self._retry_at.pop(channel, None)
        self._check_settled(session)

    def _on_notice(self, session: Session, msg: Notice) -> None:
        if msg.is_login_failure:
            self._login_failed(session, msg.text)
        elif msg.channel and msg.notice_id in CHANNEL_FAILURES:
            channel = msg.channel
            session.pending.pop(channel, None)
            session.lose_joined(channel)
            if channel in self.channels:
                self.state.mark_failed(channel, msg.notice_id)
                self._retry_at[channel] = time.monotonic() + self.failed_retry_s
            self.errors.add(msg.notice_id, f"#{channel}: {msg.text}")
            log.warning(
                "twitch irc: cannot join #%s: %s (retrying in %.0fs)",
                channel,
                msg.notice_id,
                self.failed_retry_s,
                extra={"channel": channel, "errorCode": msg.notice_id},
            )
            self._check_settled(session)

    def _login_failed(self, session: Session, text: str) -> None:
        self._login_failures += 1
        self.errors.add("login_failed", text)
        log.error(
            "twitch irc: login rejected: %s",
            text,
            extra={"userLogin": session.nick, "errorCode": "login_failed"},
        )
        session.end_reason = "login rejected"
        if self.credentials is not None and self._login_failures == 1:
            # Force one refresh, then reconnect at once; after that, back off as usual.
            self._spawn(session, self._refresh_then_close(session))
        else:
            self._spawn(session, self._close(session))

    async def _refresh_then_close(self, session: Session) -> None:
        assert self.credentials is not None
        try:
            await self.credentials.force_refresh(self.login)
            self._reconnect_now = True
        except CredentialsError as error:
            self.errors.add(error.code, str(error))
        await self._close(session)

    def _count_oversized(self, session: Session) -> None:
        count = session.transport.oversized_lines
        self.counters.oversized_lines += count - session.oversized_counted
        session.oversized_counted = count
        self.errors.add("oversized_line", f"discarded a line over {MAX_INCOMING_LINE_BYTES} bytes")

    def _on_unknown(self, session: Session, msg: Unknown) -> None:
        """Counted; each new command logged once (at most UNKNOWN_LOGGED distinct ones)."""
        self.counters.unknown_commands += 1
        command = msg.irc.command[:32]
        if command not in self._unknown_seen and len(self._unknown_seen) < UNKNOWN_LOGGED:
            self._unknown_seen.add(command)
            log.info(
                "ignoring IRC command %r (no type for it; counted as unknownCommands)", command
            )

    def _on_numeric(self, session: Session, msg: Numeric) -> None:
        if msg.code == "001":
            self._login_failures = 0
            session.logged_in = True
            session.since = time.monotonic()
            log.info("twitch irc %s: logged in as %s on %s", self.name, session.nick, self.endpoint)
            now = time.monotonic()
            # Failed channels wait for their retry time; everything else is joined now.
            wanted = [c for c in self.channels if self._retry_at.get(c, 0.0) <= now]
            for channel in wanted:
                self._retry_at.pop(channel, None)
            self._queue(session, wanted)
            self._check_settled(session)
            self._on_change()

    def _on_capability(self, session: Session, msg: Capability) -> None:
        if msg.subcommand == "NAK":
            self.errors.add("cap_nak", " ".join(msg.capabilities))
            log.error("twitch irc: capabilities refused: %s", msg.capabilities)
