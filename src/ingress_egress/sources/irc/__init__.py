"""Twitch chat over IRC (TCP, TLS or WebSocket), on asyncio."""

from ingress_egress.sources.irc.client import TwitchIrcClient

__all__ = ["TwitchIrcClient"]
