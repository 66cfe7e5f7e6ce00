"""What the chat source reports: its connection, and its channels (to read vs confirmed).

The source is the only writer, through the methods below; readers (readiness, the debug
document, the metrics, the cluster member) read the properties or a ``ChatSnapshot``.
``reading`` is what this source was told to read: the wanted list on a single instance,
this member's share of it in a cluster (the wanted list itself is the cluster's).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from types import MappingProxyType

from ingress_egress.status.counters import iso_now


@dataclass(frozen=True, slots=True)
class ChatSnapshot:
    transport: str
    identity: str
    reading: tuple[str, ...]
    joined: frozenset[str]
    pending: tuple[str, ...]
    failed_channels: Mapping[str, str]  # channel -> why (NOTICE msg-id, Helix answer, ...)
    connected: bool
    logged_in: bool
    reconnects: int
    last_reconnect_at: str | None
    connected_since: float | None
    server: str
    duplicates_dropped: int


class ChatState:
    """Connection and channels of one chat source (no locks: one event loop)."""

    def __init__(self, transport: str, identity: str, reading: tuple[str, ...] = ()) -> None:
        self._transport = transport
        self._identity = identity
        self._reading = reading
        # How many live connections confirmed each channel (two during a RECONNECT overlap).
        self._joined_on: dict[str, int] = {}
        self._failed: dict[str, str] = {}
        self._connected = False
        self._logged_in = False
        self._connected_since: float | None = None
        self._reconnects = 0
        self._last_reconnect_at: str | None = None
        self._server = ""
        self._duplicates_dropped = 0  # overlap copies dropped after a RECONNECT

    # -- reads --------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        return self._transport

    @property
    def identity(self) -> str:
        """The login, or ``anonymous``."""
        return self._identity

    @property
    def reading(self) -> tuple[str, ...]:
        return self._reading

    @property
    def joined(self) -> Set[str]:
        """Channels Twitch confirmed (a read-only view)."""
        return self._joined_on.keys()

    @property
    def failed_channels(self) -> Mapping[str, str]:
        return MappingProxyType(self._failed)

    @property
    def pending(self) -> list[str]:
        joined, failed = self._joined_on, self._failed
        return [c for c in self._reading if c not in joined and c not in failed]

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def logged_in(self) -> bool:
        return self._logged_in

    @property
    def connected_since(self) -> float | None:
        return self._connected_since

    @property
    def reconnects(self) -> int:
        return self._reconnects

    @property
    def last_reconnect_at(self) -> str | None:
        return self._last_reconnect_at

    @property
    def server(self) -> str:
        return self._server

    @property
    def duplicates_dropped(self) -> int:
        return self._duplicates_dropped

    def snapshot(self) -> ChatSnapshot:
        return ChatSnapshot(
            transport=self.transport,
            identity=self.identity,
            reading=self._reading,
            joined=frozenset(self._joined_on),
            pending=tuple(self.pending),
            failed_channels=dict(self._failed),
            connected=self._connected,
            logged_in=self._logged_in,
            reconnects=self._reconnects,
            last_reconnect_at=self._last_reconnect_at,
            connected_since=self._connected_since,
            server=self._server,
            duplicates_dropped=self._duplicates_dropped,
        )

    # -- writes (the source's) ----------------------------------------------------------

    def set_reading(self, channels: tuple[str, ...]) -> None:
        """What to read now; failures of channels no longer read are forgotten."""
        self._reading = channels
        keep = set(channels)
        for channel in [c for c in self._failed if c not in keep]:
            del self._failed[channel]

    def confirm_joined(self, channel: str) -> None:
        """Twitch confirmed a JOIN (echo or ROOMSTATE) on one connection."""
        self._joined_on[channel] = self._joined_on.get(channel, 0) + 1
        self._failed.pop(channel, None)

    def lose_joined(self, channel: str) -> None:
        """One connection left ``channel`` (PART, disconnect); joined while another has it."""
        left = self._joined_on.get(channel, 0) - 1
        if left > 0:
            self._joined_on[channel] = left
        else:
            self._joined_on.pop(channel, None)

    def set_joined(self, channel: str, joined: bool) -> None:
        """A source with one connection: ``channel`` is read now, or not (not counted)."""
        if joined:
            self._joined_on[channel] = 1
            self._failed.pop(channel, None)
        else:
            self._joined_on.pop(channel, None)

    def forget_joined(self) -> None:
        self._joined_on.clear()

    def mark_failed(self, channel: str, reason: str) -> None:
        self._failed[channel] = reason

    def clear_failed(self, channel: str | None = None) -> None:
        """``channel`` is no longer failed (None: every channel is tried again)."""
        if channel is None:
            self._failed.clear()
        else:
            self._failed.pop(channel, None)

    def set_connected(self, connected: bool, since: float | None = None) -> None:
        """Logged in and reading (``since``: monotonic time it began), or not."""
        self._connected = connected
        self._connected_since = since if connected else None

    def set_logged_in(self, logged_in: bool) -> None:
        self._logged_in = logged_in

    def set_server(self, server: str) -> None:
        self._server = server

    def mark_reconnect(self) -> None:
        self._reconnects += 1
        self._last_reconnect_at = iso_now()

    def count_duplicates(self, dropped: int) -> None:
        self._duplicates_dropped += dropped
