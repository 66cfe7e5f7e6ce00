"""``TWITCH_IRC_URL`` as a typed endpoint (scheme, host, port, WebSocket path)."""

from __future__ import annotations

from ingress_egress.config.errors import ConfigError, quote, split_url
from ingress_egress.protocol.endpoint import IrcEndpoint

IRC_URL_SCHEMES = {"irc": 6667, "ircs": 6697, "ws": 80, "wss": 443}


def parse_irc_url(url: str) -> IrcEndpoint:
    parts = split_url("TWITCH_IRC_URL", url)
    scheme = parts.scheme.lower()
    if scheme not in IRC_URL_SCHEMES:
        raise ConfigError(
            "TWITCH_IRC_URL", f"scheme must be irc, ircs, ws or wss, got {quote(url)}"
        )
    if not parts.hostname:
        raise ConfigError("TWITCH_IRC_URL", f"has no host: {quote(url)}")
    try:
        port = parts.port or IRC_URL_SCHEMES[scheme]
    except ValueError:
        raise ConfigError("TWITCH_IRC_URL", f"has an invalid port: {quote(url)}") from None
    return IrcEndpoint(scheme, parts.hostname, port, parts.path if scheme in ("ws", "wss") else "")
