"""Connection control: PING, PONG, RECONNECT, CAP and numeric replies (001, 353, 376...)."""

from __future__ import annotations

from dataclasses import dataclass

from ingress_egress.protocol import IrcMessage


@dataclass(slots=True)
class Ping:
    argument: str  # echoed back in the PONG
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Ping:
        return cls(msg.trailing, msg)


@dataclass(slots=True)
class Pong:
    argument: str
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Pong:
        return cls(msg.trailing, msg)


@dataclass(slots=True)
class Reconnect:
    """Twitch is about to restart this server: reconnect (elsewhere) soon."""

    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Reconnect:
        return cls(msg)


@dataclass(slots=True)
class Capability:
    subcommand: str  # ACK | NAK | LS
    capabilities: list[str]
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Capability:
        return cls(msg.param(1).upper(), msg.trailing.split(), msg)


@dataclass(slots=True)
class Numeric:
    code: str  # "001", "376", "421", ...
    target: str
    text: str
    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Numeric:
        return cls(msg.command, msg.param(0), msg.trailing, msg)


@dataclass(slots=True)
class Unknown:
    """A command this service has no type for; kept, counted, never fatal."""

    irc: IrcMessage

    @classmethod
    def from_irc(cls, msg: IrcMessage) -> Unknown:
        return cls(msg)
