"""Where an IRC connection goes: scheme, host, port (and a WebSocket's path).

The transports (``sources/irc/transport.py``) open it; the configuration
(``TWITCH_IRC_URL``, parsed by ``config.parse_irc_url``) builds it. It sits here, at the
bottom, so a source needs nothing of the configuration to know where to connect.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IrcEndpoint:
    scheme: str  # irc | ircs | ws | wss
    host: str
    port: int
    path: str = ""

    @property
    def uses_tls(self) -> bool:
        return self.scheme in ("ircs", "wss")

    @property
    def is_websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"
