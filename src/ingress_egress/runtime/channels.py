"""Channels changed at runtime (the admin route, SIGHUP, the channel document).

Which list a change goes to is chosen once, at composition (``channel_control``): the
cluster's wanted list in cluster mode (every member then reads its share), else the
pool's. A source without runtime channels (EventSub) gets none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from ingress_egress.cluster import ClusterCoordinator, StoreUnavailable
from ingress_egress.config import ConfigError, channel_list
from ingress_egress.sources.base import ChannelChange, ChannelReader, ChannelsUnavailable
from ingress_egress.status import ChatState, ErrorLog

log = logging.getLogger("ingress_egress.service")


class ChannelControl(Protocol):
    def channel_listing(self) -> dict[str, Any]:
        """The admin route's GET: wanted, joined, pending and failed channels."""

    async def change_channels(self, add: list[str], remove: list[str]) -> ChannelChange:
        """The admin route's POST (``ChannelsUnavailable`` when it cannot be made now)."""

    def replace_channels(self, channels: tuple[str, ...]) -> str:
        """Make ``channels`` the wanted list; returns what happened, for a log line."""


class PoolChannels:
    """A single instance: the pool's list is the wanted list."""

    def __init__(self, reader: ChannelReader, state: ChatState) -> None:
        self.reader = reader
        self.state = state

    def channel_listing(self) -> dict[str, Any]:
        return _listing(self.state, self.state.reading)

    async def change_channels(self, add: list[str], remove: list[str]) -> ChannelChange:
        return _logged(self.reader.change(add=add, remove=remove))

    def replace_channels(self, channels: tuple[str, ...]) -> str:
        change = self.reader.replace(channels)
        return f"{len(change.wanted)} wanted, +{len(change.added)} -{len(change.removed)}"


class ClusterChannels:
    """Cluster mode: the cluster's wanted list; this member reads its share of it."""

    def __init__(self, cluster: ClusterCoordinator, state: ChatState) -> None:
        self.cluster = cluster
        self.state = state

    def channel_listing(self) -> dict[str, Any]:
        listing = _listing(self.state, self.cluster.wanted)
        listing["reading"] = list(self.state.reading)
        return listing

    async def change_channels(self, add: list[str], remove: list[str]) -> ChannelChange:
        try:
            change = await self.cluster.change_wanted(add, remove)
        except StoreUnavailable as error:
            raise ChannelsUnavailable(f"cluster store unreachable: {error}") from None
        return _logged(ChannelChange(change.added, change.removed, change.wanted))

    def replace_channels(self, channels: tuple[str, ...]) -> str:
        self.cluster.request_replace(channels)
        return f"{len(channels)} wanted, for the whole cluster"


def channel_control(
    reader: ChannelReader | None, cluster: ClusterCoordinator | None, state: ChatState
) -> ChannelControl | None:
    """Where channel changes go: the cluster, the pool, or nowhere (EventSub)."""
    if cluster is not None:
        return ClusterChannels(cluster, state)
    if reader is not None:
        return PoolChannels(reader, state)
    return None


def reload_channels(
    control: ChannelControl | None, errors: ErrorLog, env: Mapping[str, str]
) -> None:
    """SIGHUP: re-read the channel list (``TWITCH_CHANNELS_FILE`` or the environment)."""
    try:
        channels = channel_list(env)
    except ConfigError as error:
        errors.add("reload_failed", str(error))
        log.error("channel reload failed, keeping the current list: %s", error)
        return
    if control is None:
        log.warning("SIGHUP ignored: channels change at runtime on the IRC source only")
        return
    log.info("channel list reloaded: %s", control.replace_channels(channels))


def _listing(state: ChatState, wanted: tuple[str, ...]) -> dict[str, Any]:
    return {
        "wanted": list(wanted),
        "joined": sorted(state.joined),
        "pending": state.pending,
        "failed": dict(state.failed_channels),
    }


def _logged(change: ChannelChange) -> ChannelChange:
    if change.added or change.removed:
        log.info(
            "channels changed: +%s -%s",
            ",".join(change.added) or "-",
            ",".join(change.removed) or "-",
        )
    return change
