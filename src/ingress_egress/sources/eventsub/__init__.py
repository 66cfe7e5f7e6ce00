"""Twitch chat over EventSub WebSockets (TwitchIO 3), producing the IRC path's messages."""

from ingress_egress.sources.eventsub.source import MAX_CHANNELS, EventSubSource

__all__ = ["MAX_CHANNELS", "EventSubSource"]
