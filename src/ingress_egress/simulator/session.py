"""One client connection's IRC dialogue: login, CAP, JOIN/PART, PING/PONG and PRIVMSG.

Lines are read with the project's IRC parser (``protocol.irc.parse_line``), each as its own
line: a CR or LF inside a sender's text therefore shows up here as a second command, which
is recorded (``ChatRules.injections``) when it is not one a client sends.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ingress_egress.protocol.irc import IrcMessage, IrcParseError, parse_line
from ingress_egress.protocol.tags import format_tags
from ingress_egress.simulator.bot_chat import BotChat, userstate_line
from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.hub import SERVER, Connection, Hub
from ingress_egress.simulator.traffic import room_id_for

CAPABILITIES = ("twitch.tv/membership", "twitch.tv/tags", "twitch.tv/commands")
_PRE_LOGIN_COMMANDS = frozenset({"CAP", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"})
_WELCOME = (
    ("001", "Welcome, GLHF!"),
    ("002", f"Your host is {SERVER}"),
    ("003", "This server is rather new"),
    ("004", "-"),
    ("375", "-"),
    ("372", "You are in a maze of twisty passages, all alike."),
    ("376", ">"),
)


@dataclass
class SessionRecords:
    """What clients did, for tests: ``(connection index, ...)`` in arrival order."""

    logins: list[str] = field(default_factory=list)
    joins: list[tuple[int, str]] = field(default_factory=list)
    parts: list[tuple[int, str]] = field(default_factory=list)
    pongs: list[tuple[int, str]] = field(default_factory=list)
    privmsgs: list[tuple[int, str, str]] = field(default_factory=list)
    join_times: dict[str, deque[float]] = field(default_factory=dict)  # login -> JOIN times


@dataclass
class SessionContext:
    """What every session shares."""

    hub: Hub
    faults: Faults
    records: SessionRecords
    bots: BotChat
    on_first_join: Callable[[str], None]  # a channel gets its first subscriber


class IrcSession:
    """The dialogue of one connection; ``handle`` takes each line it sends."""

    def __init__(self, ctx: SessionContext, client: Connection) -> None:
        self.ctx = ctx
        self.client = client

    async def handle(self, line: str) -> bool:
        """Process one client line; ``False`` means the connection is to be closed. A bare CR
        ends a line too, as it does for IRC servers: what follows is a line of its own."""
        if "\r" in line:
            for part in line.split("\r"):
                if part and not await self._handle_one(part):
                    return False
            return True
        return await self._handle_one(line)

    async def _handle_one(self, line: str) -> bool:
        try:
            msg = parse_line(line)
        except IrcParseError:
            return True  # not IRC (an empty line, tags alone): Twitch says nothing
        client = self.client
        command = msg.command.upper()
        if not client.registered and command not in _PRE_LOGIN_COMMANDS:
            return False  # Twitch drops clients that talk before logging in
        handler = self._handlers.get(command)
        if handler is None:
            await self._unknown(command, line)
            return True
        return await handler(self, msg)

    async def _unknown(self, command: str, line: str) -> None:
        client = self.client
        if client.account is not None:
            self.ctx.bots.rules.record_injection(client.nick, line)
            self.ctx.hub.notify()
        await client.write([f":{SERVER} 421 {client.nick or '*'} {command} :Unknown command"])

    async def _cap(self, msg: IrcMessage) -> bool:
        client = self.client
        params = msg.params
        sub = params[0].upper() if params else ""
        lines: list[str] = []
        if sub == "LS":
            lines = [f":{SERVER} CAP * LS :{' '.join(CAPABILITIES)}"]
        elif sub == "LIST":
            lines = [f":{SERVER} CAP * LIST :{' '.join(sorted(client.caps))}"]
        elif sub == "REQ":
            requested = params[1].split() if len(params) > 1 else []
            known = [c for c in requested if c.lstrip("-") in CAPABILITIES]
            unknown = [c for c in requested if c.lstrip("-") not in CAPABILITIES]
            for cap in known:
                if cap.startswith("-"):
                    client.caps.discard(cap[1:])
                else:
                    client.caps.add(cap)
            if known:
                lines.append(f":{SERVER} CAP * ACK :{' '.join(known)}")
            if unknown:
                lines.append(f":{SERVER} CAP * NAK :{' '.join(unknown)}")
        await client.write(lines)  # CAP END and anything else: nothing to say
        return True

    async def _pass(self, msg: IrcMessage) -> bool:
        self.client.password = msg.param(0)
        return True

    async def _ignore(self, msg: IrcMessage) -> bool:
        return True

    async def _ping(self, msg: IrcMessage) -> bool:
        if not self.ctx.faults.no_pong:
            token = msg.params[-1] if msg.params else SERVER
            await self.client.write([f":{SERVER} PONG {SERVER} :{token}"])
        return True

    async def _pong(self, msg: IrcMessage) -> bool:
        self.ctx.records.pongs.append((self.client.index, msg.trailing))
        self.ctx.hub.notify()
        return True

    async def _quit(self, msg: IrcMessage) -> bool:
        return False

    # -- login -------------------------------------------------------------------------------

    async def _nick(self, msg: IrcMessage) -> bool:
        client = self.client
        if client.registered:
            return True  # Twitch ignores nick changes
        nick = msg.param(0).lower()
        self.ctx.records.logins.append(nick)
        self.ctx.hub.notify()
        faults = self.ctx.faults
        if faults.reject_login and faults.applies_to(client.index):
            await client.write([f":{SERVER} NOTICE * :Login authentication failed"])
            return False
        client.nick = nick
        password = client.password
        if not nick or (
            not client.anonymous and (password is None or not password.startswith("oauth:"))
        ):
            await client.write([f":{SERVER} NOTICE * :Improperly formatted auth"])
            return False
        if not client.anonymous:
            assert password is not None
            client.account = self.ctx.bots.rules.account_for_login(nick, password[6:])
            if client.account is None:
                await client.write([f":{SERVER} NOTICE * :Login authentication failed"])
                return False
        client.registered = True
        lines = [f":{SERVER} {code} {nick} :{text}" for code, text in _WELCOME]
        if client.tags and client.account is not None:
            tags = {
                "badge-info": "",
                "badges": "",
                "color": "",
                "display-name": nick,
                "emote-sets": "0",
                "user-id": client.account.user_id,
                "user-type": "",
            }
            lines.append(f"{format_tags(tags)} :{SERVER} GLOBALUSERSTATE")
        await client.write(lines)
        return True

    # -- channels ----------------------------------------------------------------------------

    def _join_allowed(self) -> bool:
        faults = self.ctx.faults
        limit = faults.join_limit_per_10s
        if limit is None:
            return True
        now = time.monotonic()
        attempts = self.ctx.records.join_times.setdefault(self.client.nick, deque())
        while attempts and now - attempts[0] >= faults.join_window:
            attempts.popleft()
        if len(attempts) >= limit:
            return False
        attempts.append(now)
        return True

    def _suspended(self, channel: str) -> bool:
        settings = self.ctx.bots.rules.channels.get(channel)
        return self.ctx.faults.is_suspended(channel) or (
            settings is not None and settings.suspended
        )

    async def _join(self, msg: IrcMessage) -> bool:
        client = self.client
        lines: list[str] = []
        for raw in msg.param(0).split(","):
            channel = raw.strip().lstrip("#").lower()
            if not channel:
                continue
            self.ctx.records.joins.append((client.index, channel))
            if not self._join_allowed():
                await client.write(lines)
                return False  # over Twitch's JOIN rate limit: disconnected
            if channel in self.ctx.faults.ignored_joins:
                continue  # dropped silently: no echo, no NOTICE, no chat
            if self._suspended(channel):
                lines.append(
                    f"@msg-id=msg_channel_suspended :{SERVER} NOTICE #{channel} "
                    ":This channel does not exist or has been suspended."
                )
                continue
            lines += self._join_replies(channel)
            client.channels.add(channel)
        await client.write(lines)
        # Subscribe only once the JOIN replies are out, so chat never precedes the JOIN echo.
        hub = self.ctx.hub
        if client.receiving:
            for channel in client.channels:
                if channel not in hub.subs:
                    self.ctx.on_first_join(channel)
                hub.subscribe(client, channel)
        hub.notify()
        return True

    def _join_replies(self, channel: str) -> list[str]:
        client = self.client
        nick = client.nick
        lines = [
            f":{nick}!{nick}@{nick}.{SERVER} JOIN #{channel}",
            f":{nick}.{SERVER} 353 {nick} = #{channel} :{nick}",
            f":{nick}.{SERVER} 366 {nick} #{channel} :End of /NAMES list",
        ]
        if client.commands:
            rules = self.ctx.bots.rules
            role = rules.settings(channel).role if client.account is not None else "none"
            lines.append(userstate_line(nick, channel, role, tagged=client.tags))
            lines.append(self._roomstate(channel))
        return lines

    def _roomstate(self, channel: str) -> str:
        settings = self.ctx.bots.rules.channels.get(channel)
        room = {
            "emote-only": "1" if settings is not None and settings.emote_only else "0",
            "followers-only": str(settings.followers_only) if settings is not None else "-1",
            "r9k": "0",
            "room-id": room_id_for(channel),
            "slow": str(settings.slow) if settings is not None else "0",
            "subs-only": "1" if settings is not None and settings.subs_only else "0",
        }
        prefix = f"{format_tags(room)} " if self.client.tags else ""
        return f"{prefix}:{SERVER} ROOMSTATE #{channel}"

    async def _part(self, msg: IrcMessage) -> bool:
        client = self.client
        nick = client.nick
        lines: list[str] = []
        for raw in msg.param(0).split(","):
            channel = raw.strip().lstrip("#").lower()
            if not channel:
                continue
            self.ctx.records.parts.append((client.index, channel))
            self.ctx.hub.leave(client, channel)
            lines.append(f":{nick}!{nick}@{nick}.{SERVER} PART #{channel}")
        await client.write(lines)
        self.ctx.hub.notify()
        return True

    # -- chat --------------------------------------------------------------------------------

    async def _privmsg(self, msg: IrcMessage) -> bool:
        client = self.client
        if len(msg.params) < 2 or client.account is None:
            return True  # Twitch silently ignores chat from anonymous logins
        channel = msg.params[0].lstrip("#").lower()
        text = msg.params[1]
        self.ctx.records.privmsgs.append((client.index, channel, text))
        reply_to = msg.tags.get("reply-parent-msg-id", "")
        await self.ctx.bots.send(
            client.account, channel, text, via="irc", origin=client, reply_to=reply_to
        )
        return True

    _handlers = {
        "CAP": _cap,
        "PASS": _pass,
        "NICK": _nick,
        "USER": _ignore,
        "PING": _ping,
        "PONG": _pong,
        "QUIT": _quit,
        "JOIN": _join,
        "PART": _part,
        "PRIVMSG": _privmsg,
    }
