"""What every chat source offers the service: the ``ChatSource`` protocol.

The service runs, stops and reports a source without knowing which one it is. A source
that can change its channels at runtime (the IRC pool) offers a ``ChannelReader``;
EventSub does not (``channel_control()`` is None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ingress_egress.status import ChatSnapshot

# (channel, Twitch message id) of each of the bot's own chat messages the source read
# (egress/echo.py confirms sends with them).
SelfMessageHook = Callable[[str, str], None]

PENDING_LISTED = 20  # channels named in a readiness reason (the count is in /_debug/twitch)


class ChannelsUnavailable(Exception):
    """A channel change could not be made now (the cluster store is unreachable)."""


@dataclass(frozen=True, slots=True)
class ChannelChange:
    """What a change of channels did: added, removed, and the resulting list."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    wanted: tuple[str, ...]


class ChannelReader(Protocol):
    """A source whose channels change at runtime (the admin route, SIGHUP, a document)."""

    def change(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> ChannelChange: ...

    def replace(self, channels: tuple[str, ...]) -> ChannelChange: ...


class ChatSource(Protocol):
    @property
    def name(self) -> str:
        """What it is, for its task and logs (``twitch-irc``, ``twitch-eventsub``)."""

    @property
    def debug_section(self) -> str:
        """The key of its ``describe()`` in ``/_debug/twitch`` (``pool``, ``eventsub``)."""

    async def run(self) -> None:
        """Read until stopped (reconnecting on its own)."""

    async def stop(self) -> None: ...

    def snapshot(self) -> ChatSnapshot:
        """Connection and channels now."""

    def readiness(self) -> list[str]:
        """Why chat is not being read fully now; empty when it is."""

    def describe(self) -> dict[str, Any]:
        """Secret-free detail of this kind of source for ``/_debug/twitch``."""

    def connections(self) -> list[dict[str, Any]]:
        """One ``/_debug/twitch`` entry per connection to Twitch."""

    def channel_control(self) -> ChannelReader | None:
        """The source's runtime channel changes, or None when it has none."""


def chat_readiness(chat: ChatSnapshot) -> list[str]:
    """The reasons every source shares: not connected, channels not (yet) read."""
    reasons = []
    if not chat.connected:
        reasons.append("not connected to Twitch")
    if chat.pending:
        reasons.append(f"channels not joined yet: {', '.join(chat.pending[:PENDING_LISTED])}")
    if chat.failed_channels:
        failed = ", ".join(f"{c} ({why})" for c, why in chat.failed_channels.items())
        reasons.append(f"channels failed: {failed}")
    return reasons
