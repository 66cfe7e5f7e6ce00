"""Fault switches for the chat simulator.

Every field can be changed while the simulator runs; per-connection message budgets
(``reconnect_after`` / ``drop_after``) are read when a connection is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """What the simulator should do wrong (or strictly, as Twitch does) on purpose.

    ``reconnect_after``: after this many chat messages on one connection send
    ``:tmi.twitch.tv RECONNECT`` and close the connection ``reconnect_close_delay`` seconds
    later; no more chat goes to it in between.

    ``reconnect_overlap``: after RECONNECT keep sending chat to that connection until it is
    closed (by the client's QUIT or ``reconnect_close_delay`` later), as Twitch does: a client
    that joins a replacement meanwhile gets the same channel's messages on both connections.

    ``drop_after``: after this many chat messages on one connection close the TCP connection
    without any goodbye (no RECONNECT, no NOTICE, no WebSocket close frame).

    ``no_pong``: stop answering client ``PING``.

    ``reject_login``: answer ``NICK`` with ``NOTICE * :Login authentication failed`` and close.

    ``join_limit_per_10s``: more JOIN attempts than this by one login within
    ``join_window`` seconds closes the connection that made the attempt (Twitch's JOIN rate
    limit). ``None`` disables the check.

    ``suspended_channels``: JOINs to these channel logins (without ``#``) get a
    ``msg_channel_suspended`` NOTICE and no JOIN echo.

    ``ignored_joins``: JOINs to these channel logins get no answer at all (Twitch sometimes
    drops a JOIN silently; a client must notice the missing confirmation and retry).

    ``apply_to_first``: apply ``reconnect_after``, ``drop_after`` and ``reject_login`` only to
    the first N connections the simulator accepts (``None`` = every connection), so a test can
    make the first connection fail and the reconnect succeed.
    """

    reconnect_after: int | None = None
    drop_after: int | None = None
    no_pong: bool = False
    reject_login: bool = False
    join_limit_per_10s: int | None = None
    join_window: float = 10.0
    suspended_channels: set[str] = field(default_factory=set)
    reconnect_close_delay: float = 1.0
    reconnect_overlap: bool = False
    ignored_joins: set[str] = field(default_factory=set)
    apply_to_first: int | None = None

    def applies_to(self, connection_index: int) -> bool:
        """Whether per-connection faults apply to the connection with this 0-based index."""
        return self.apply_to_first is None or connection_index < self.apply_to_first

    def message_budget(self, connection_index: int) -> int | None:
        """Messages a new connection may receive before its fault fires (``None`` = no limit)."""
        if not self.applies_to(connection_index):
            return None
        limits = [n for n in (self.reconnect_after, self.drop_after) if n is not None]
        return min(limits) if limits else None

    def is_suspended(self, channel: str) -> bool:
        return channel.lstrip("#").lower() in {
            c.lstrip("#").lower() for c in self.suspended_channels
        }
