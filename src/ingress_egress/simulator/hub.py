"""What the simulator's parts share: the connections, who joined which channel, and the
"something changed" signal that ``wait_until`` waits on.

The IRC session writes membership here; the firehose, the live stream and the bot relay
read it to know whom to write to.
"""

from __future__ import annotations

import asyncio
import re

from ingress_egress.simulator.rules import BotAccount
from ingress_egress.simulator.transport import Transport

SERVER = "tmi.twitch.tv"
CLOSE_ERRORS = (ConnectionError, OSError)  # TransportClosed is a ConnectionError
_ANONYMOUS_RE = re.compile(r"^justinfan\d+$")


class Connection:
    """One client connection: its transport, login, capabilities, channels and fault budget."""

    __slots__ = (
        "account",
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
        self.account: BotAccount | None = None  # set when a bot logged in with its token

    @property
    def tags(self) -> bool:
        return "twitch.tv/tags" in self.caps

    @property
    def commands(self) -> bool:
        """Whether Twitch-specific commands (USERSTATE, ROOMSTATE, ...) go to it."""
        return bool(self.caps & {"twitch.tv/tags", "twitch.tv/commands"})

    @property
    def anonymous(self) -> bool:
        return bool(_ANONYMOUS_RE.match(self.nick))

    async def write(self, lines: list[str]) -> None:
        if lines:
            await self.transport.send(("\r\n".join(lines) + "\r\n").encode())


def without_tags(line: str) -> str:
    return line.partition(" ")[2] if line.startswith("@") else line


class Hub:
    """Connections by index and subscribers by channel, plus the change signal."""

    def __init__(self) -> None:
        self.clients: dict[int, Connection] = {}
        self.subs: dict[str, set[Connection]] = {}
        self.next_index = 0
        self.changed = asyncio.Event()

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def add(self, client: Connection) -> None:
        self.clients[client.index] = client
        self.notify()

    def forget(self, client: Connection) -> None:
        self.unsubscribe(client)
        self.clients.pop(client.index, None)

    def subscribe(self, client: Connection, channel: str) -> None:
        self.subs.setdefault(channel, set()).add(client)

    def leave(self, client: Connection, channel: str) -> None:
        client.channels.discard(channel)
        self._drop(client, channel)

    def unsubscribe(self, client: Connection) -> None:
        """No more chat to ``client`` (it is closing or reached a fault)."""
        client.receiving = False
        for channel in client.channels:
            self._drop(client, channel)

    def _drop(self, client: Connection, channel: str) -> None:
        subs = self.subs.get(channel)
        if subs is not None:
            subs.discard(client)
            if not subs:
                del self.subs[channel]


class ChatLog:
    """Chat written to at least one connection: ``sent[channel]`` lists ``(id, text)`` in
    send order when ``record``; ``count`` counts every one either way."""

    def __init__(self, record: bool) -> None:
        self.record = record
        self.sent: dict[str, list[tuple[str, str]]] = {}
        self.count = 0
