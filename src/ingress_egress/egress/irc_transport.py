"""Sending as the bot over Twitch IRC: its own authenticated connection, PRIVMSG per part.

* **Login:** ``CAP REQ :twitch.tv/tags twitch.tv/commands``, ``PASS oauth:<token>`` (the
  token from a getter, so a refreshed one is used on the next login), ``NICK <bot>``; the
  login holds once ``001`` arrives. GLOBALUSERSTATE gives the bot's user id.
* **Channels** are joined on their first send (``prepare``), at most ``joins_per_window``
  JOINs per ``join_window_s`` (Twitch: 20 per 10 s per user); the USERSTATE and ROOMSTATE
  that follow a JOIN tell the bot's role and the channel's modes (``ChannelStates``).
* **One message in flight per channel** (the sender guarantees it): the answer to a
  PRIVMSG is the next USERSTATE for that channel that carries an ``id`` tag (the sent
  message's id: taken from that answer only, never from an older USERSTATE) or a NOTICE
  for that channel with a refusal msg-id (``dropped``, reason = the msg-id). No answer
  within ``answer_timeout_s``, or the connection lost meanwhile: ``unknown``, never resent.
* A reply carries the client tag ``@reply-parent-msg-id=...``; an action is CTCP ACTION.
* The connection is kept up by a supervisor: PING answered, RECONNECT and a lost
  connection lead to a new login after a backoff; channels are joined again when next used.

The byte transport is the project's (``sources/irc/transport.py`` ``open_transport``),
passed in as ``open_lines`` by the composition root: egress and sources are independent
components (the import layers), and tests may pass it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ingress_egress.bus.egress_backoff import Backoff
from ingress_egress.egress.channel_state import ChannelStates
from ingress_egress.egress.text import irc_body
from ingress_egress.egress.transport import SenderClock, SendOutcome, TransportError
from ingress_egress.protocol.endpoint import IrcEndpoint
from ingress_egress.protocol.irc import IrcMessage, IrcParseError, parse_line
from ingress_egress.protocol.tags import escape_tag_value
from ingress_egress.twitch.messages import Notice, Roomstate, Userstate

log = logging.getLogger("ingress_egress.egress.irc")

CAPABILITIES = "twitch.tv/tags twitch.tv/commands"
# NOTICE msg-ids that answer a PRIVMSG (dev.twitch.tv/docs/irc/msg-id): every ``msg_*``
# plus these. Room-mode notices (``slow_on``, ``emote_only_on``, ...) are not answers.
REFUSALS = frozenset({"unrecognized_cmd", "no_permission", "bad_auth"})
KEEPALIVE = "egress-keepalive"
_NO_ANSWER = "no_answer"
_CONNECTION_LOST = "connection_lost"
_NOT_CONNECTED = "not_connected"


class LineConnection(Protocol):
    """What the project's line transports offer (``sources/irc/transport.py``)."""

    async def read_lines(self) -> list[str]: ...

    async def send_lines(self, lines: list[str]) -> None: ...

    async def close(self) -> None: ...


OpenLines = Callable[[IrcEndpoint, float], Awaitable[LineConnection]]
TokenGetter = Callable[[], Awaitable[str]]


def is_refusal(msg_id: str) -> bool:
    return msg_id.startswith("msg_") or msg_id in REFUSALS


def privmsg_line(channel: str, part: str, reply_to: str | None, is_action: bool) -> str:
    """The PRIVMSG for one part. CR, LF and NUL never reach the wire: ``prepare_text``
    replaced them, and a line that still holds one is refused here (ValueError)."""
    body = irc_body(part, is_action)
    tags = f"@reply-parent-msg-id={escape_tag_value(reply_to)} " if reply_to else ""
    line = f"{tags}PRIVMSG #{channel} :{body}"
    if any(c in line for c in "\r\n\0"):
        raise ValueError("a PRIVMSG may not hold CR, LF or NUL")
    return line


class IrcChatTransport:
    name = "irc"

    def __init__(
        self,
        endpoint: IrcEndpoint,
        login: str,
        token: TokenGetter,
        channels: ChannelStates,
        open_lines: OpenLines,
        *,
        clock: SenderClock | None = None,
        answer_timeout_s: float = 10.0,
        join_timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        joins_per_window: int = 20,
        join_window_s: float = 10.0,
        join_margin_s: float = 1.0,
        idle_s: float = 60.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.idle_s = idle_s  # silence this long: PING; as long again: the connection is dead
        self.login = login.lower()
        self._token = token
        self.channels = channels
        self._open_lines = open_lines
        self.clock = clock or SenderClock()
        self.answer_timeout_s = answer_timeout_s
        self.join_timeout_s = join_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.joins_per_window = joins_per_window
        self.join_window_s = join_window_s
        self.join_margin_s = join_margin_s
        self.backoff = backoff or Backoff(initial_s=0.5, max_s=30.0)
        self.user_id: str | None = None
        self.logins = 0
        self.reconnects = 0
        self.last_error = ""
        self._conn: LineConnection | None = None
        self._ready = asyncio.Event()  # logged in on the current connection
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._answers: dict[str, asyncio.Future[SendOutcome]] = {}
        self._joined: set[str] = set()
        self._joining: dict[str, asyncio.Future[SendOutcome | None]] = {}
        self._join_times: deque[float] = deque()  # when each recent JOIN was answered
        self._joins_in_flight = 0
        self._join_lock = asyncio.Lock()
        self._login_failed: str | None = None
        # Channels whose last PRIVMSG got no answer in time: a late answer could still
        # come and must not be taken for the next message's (a PING barrier first).
        self._unanswered: set[str] = set()
        self._pongs: dict[str, asyncio.Future[None]] = {}
        self._barriers = 0
        self._reconnect_asked = False

    # -- lifecycle ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Start the connection; wait up to ``connect_timeout_s`` for the first login
        (``TransportError`` then, while the supervisor keeps trying)."""
        self._closing = False
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.create_task(self._supervise(), name="egress-irc")
        if not await self._wait_ready(self.connect_timeout_s):
            raise TransportError(f"IRC login to {self.endpoint} failed: {self.last_error}")

    async def close(self) -> None:
        self._closing = True
        task, self._supervisor = self._supervisor, None
        await self._drop_connection()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    async def _wait_ready(self, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout_s)
        return self._ready.is_set()

    async def _supervise(self) -> None:
        while not self._closing:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # one session's trouble never ends the supervisor
                self.last_error = _describe(error)
                log.warning("egress IRC connection: %s", self.last_error)
            await self._drop_connection()
            if self._closing:
                return
            self.reconnects += 1
            await asyncio.sleep(self.backoff.next_delay())

    async def _session(self) -> None:
        token = (await self._token()).removeprefix("oauth:")
        self._login_failed = None
        self._conn = await self._open_lines(self.endpoint, self.connect_timeout_s)
        await self._conn.send_lines(
            [f"CAP REQ :{CAPABILITIES}", f"PASS oauth:{token}", f"NICK {self.login}"]
        )
        del token
        self._reconnect_asked = False
        pinged = False
        while True:
            try:
                lines = await asyncio.wait_for(self._conn.read_lines(), self._read_wait())
            except TimeoutError:
                if self._reconnect_asked:
                    raise TransportError("RECONNECT: answers still missing, moving on") from None
                if pinged:
                    raise TransportError(f"no answer to PING in {self.idle_s} s") from None
                pinged = await self._write([f"PING :{KEEPALIVE}"])
                continue
            pinged = False
            for line in lines:  # TransportClosed (above) ends the session too
                await self._dispatch(line)
            if self._login_failed is not None:
                raise TransportError(self._login_failed)
            if self._reconnect_asked and not self._answers:
                raise TransportError("Twitch asked to reconnect (RECONNECT)")

    def _read_wait(self) -> float:
        """How long a read may wait: after RECONNECT only for the answers still owed."""
        return self.answer_timeout_s if self._reconnect_asked else self.idle_s

    async def _drop_connection(self) -> None:
        self._ready.clear()
        self._joined.clear()
        self._unanswered.clear()  # a new connection hears nothing about the old one's
        conn, self._conn = self._conn, None
        for future in self._answers.values():
            if not future.done():
                future.set_result(self._outcome("unknown", _CONNECTION_LOST))
        for joining in self._joining.values():
            if not joining.done():
                joining.set_result(self._outcome("failed", _CONNECTION_LOST, written=False))
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # -- what Twitch says ----------------------------------------------------------------

    async def _dispatch(self, line: str) -> None:
        try:
            msg = parse_line(line)
        except IrcParseError:
            return
        command = msg.command
        if command == "PING":
            await self._write([f"PONG :{msg.trailing or 'tmi.twitch.tv'}"])
        elif command == "PONG":
            pong = self._pongs.get(msg.trailing)
            if pong is not None and not pong.done():
                pong.set_result(None)
        elif command == "001":
            self.logins += 1
            self.backoff.succeeded()
            self._ready.set()
        elif command == "USERSTATE":
            self._on_userstate(Userstate.from_irc(msg))
        elif command == "GLOBALUSERSTATE":
            self.user_id = msg.tags.get("user-id") or self.user_id
        elif command == "ROOMSTATE":
            self._on_roomstate(Roomstate.from_irc(msg))
        elif command == "NOTICE":
            self._on_notice(Notice.from_irc(msg))
        elif command == "RECONNECT":
            # No new message on this connection; those in flight get their answers first.
            self._reconnect_asked = True
            self._ready.clear()
        elif command == "JOIN":
            self._on_join(msg)

    def _on_userstate(self, userstate: Userstate) -> None:
        now = self.clock.now()
        self.channels.learn_userstate(userstate, now)
        message_id = userstate.irc.tags.get("id")
        waiting = self._answers.get(userstate.channel)
        if message_id and waiting is not None and not waiting.done():
            waiting.set_result(SendOutcome("sent", now, twitch_message_id=message_id))

    def _on_roomstate(self, roomstate: Roomstate) -> None:
        self.channels.learn_roomstate(roomstate)
        joining = self._joining.get(roomstate.channel)
        if joining is not None and not joining.done():
            joining.set_result(None)

    def _on_join(self, msg: IrcMessage) -> None:
        if (msg.nick or "").lower() == self.login:
            self._joined.add(msg.param(0).lstrip("#").lower())

    def _on_notice(self, notice: Notice) -> None:
        if not notice.channel:
            if notice.is_login_failure:
                self._login_failed = f"login refused: {notice.text[:120]}"
                self.last_error = self._login_failed
            return
        if not is_refusal(notice.notice_id):
            return
        now = self.clock.now()
        joining = self._joining.get(notice.channel)
        if joining is not None and not joining.done():
            outcome = SendOutcome(
                "dropped", now, reason=notice.notice_id, detail=notice.text, written=False
            )
            joining.set_result(outcome)
            return
        waiting = self._answers.get(notice.channel)
        if waiting is not None and not waiting.done():
            waiting.set_result(
                SendOutcome("dropped", now, reason=notice.notice_id, detail=notice.text)
            )

    # -- sending -------------------------------------------------------------------------

    async def prepare(self, channel: str, channel_id: str | None = None) -> SendOutcome | None:
        if not await self._wait_ready(self.connect_timeout_s):
            return self._outcome("failed", _NOT_CONNECTED, written=False)
        if channel in self._joined:
            return None
        joining = asyncio.get_running_loop().create_future()
        self._joining[channel] = joining
        await self._join_budget()
        try:
            if not await self._write([f"JOIN #{channel}"]):
                return self._outcome("failed", _NOT_CONNECTED, written=False)
            refused = await asyncio.wait_for(asyncio.shield(joining), self.join_timeout_s)
        except TimeoutError:
            refused = None if channel in self._joined else self._join_timed_out(channel)
        finally:
            self._joining.pop(channel, None)
            self._join_finished()
        if refused is None:
            self._joined.add(channel)
        return refused

    def _join_timed_out(self, channel: str) -> SendOutcome:
        return self._outcome("failed", "join_timeout", written=False)

    async def _join_budget(self) -> None:
        """Twitch allows ``joins_per_window`` JOINs per ``join_window_s`` per user. A JOIN
        counts from its answer (Twitch had it by then, however long it travelled) and, until
        answered, as if it were answered now; ``join_margin_s`` on top."""
        window = self.join_window_s + self.join_margin_s
        async with self._join_lock:
            while True:
                now = self.clock.now()
                while self._join_times and self._join_times[0] <= now - window:
                    self._join_times.popleft()
                if len(self._join_times) + self._joins_in_flight < self.joins_per_window:
                    self._joins_in_flight += 1
                    return
                oldest = self._join_times[0] if self._join_times else now
                await self.clock.sleep(max(oldest + window - now, 0.1))

    def _join_finished(self) -> None:
        self._joins_in_flight -= 1
        self._join_times.append(self.clock.now())

    async def send(
        self,
        channel: str,
        part: str,
        reply_to: str | None,
        is_action: bool,
        *,
        channel_id: str | None = None,
    ) -> SendOutcome:
        refused = await self.prepare(channel, channel_id)
        if refused is not None:
            return refused
        try:
            line = privmsg_line(channel, part, reply_to, is_action)
        except ValueError as error:
            return self._outcome("failed", "bad_text", detail=str(error), written=False)
        if channel in self._unanswered:
            await self._barrier()
            self._unanswered.discard(channel)
        waiting: asyncio.Future[SendOutcome] = asyncio.get_running_loop().create_future()
        self._answers[channel] = waiting
        conn = self._conn
        if conn is None:
            self._answers.pop(channel, None)
            return self._outcome("failed", _NOT_CONNECTED, written=False)
        try:
            await conn.send_lines([line])
            return await asyncio.wait_for(asyncio.shield(waiting), self.answer_timeout_s)
        except ConnectionError as error:  # part of the line may have gone out
            return self._outcome("unknown", _CONNECTION_LOST, detail=_describe(error))
        except TimeoutError:
            self._unanswered.add(channel)
            return self._outcome("unknown", _NO_ANSWER, detail="no USERSTATE or NOTICE in time")
        finally:
            self._answers.pop(channel, None)

    async def _barrier(self) -> None:
        """PING and wait for its PONG: Twitch answers in order, so whatever it still had
        to say about earlier messages has arrived (and found no one waiting) by then."""
        self._barriers += 1
        token = f"egress-barrier-{self._barriers}"
        pong: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs[token] = pong
        try:
            if await self._write([f"PING :{token}"]):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pong, self.answer_timeout_s)
        finally:
            self._pongs.pop(token, None)

    async def _write(self, lines: list[str]) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            await conn.send_lines(lines)
        except ConnectionError as error:
            self.last_error = _describe(error)
            return False
        return True

    def _outcome(
        self, status: Any, reason: str, *, detail: str | None = None, written: bool = True
    ) -> SendOutcome:
        return SendOutcome(status, self.clock.now(), reason=reason, detail=detail, written=written)

    def describe(self) -> dict[str, Any]:
        return {
            "transport": self.name,
            "endpoint": str(self.endpoint),
            "login": self.login,
            "userId": self.user_id,
            "connected": self.connected,
            "logins": self.logins,
            "reconnects": self.reconnects,
            "joined": len(self._joined),
            "inFlight": len(self._answers),
            "lastError": self.last_error,
        }


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text[:300]
