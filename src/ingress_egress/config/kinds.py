"""How one variable's text becomes its typed value: a kind per shape of value.

A kind reads the raw environment value (None when unset) and the variable's declared
default, and returns the typed value or raises a ``ConfigError`` naming the variable.
Blank counts as unset unless a kind says otherwise.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from ingress_egress.config.endpoints import IrcEndpoint, parse_irc_url
from ingress_egress.config.errors import ConfigError, quote, split_url
from ingress_egress.twitch.logins import channel_login, is_login

CHANNELS_FILE_MAX = 1 << 20  # characters: 100,000 logins of 10 fit
# A cluster id and a stream name: a valid NATS KV key, JetStream stream name and Firestore id.
PORTABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Pub/Sub topic names allow letters, digits and -_.~+% ; NATS subjects must not hold spaces
# or wildcards. One rule that satisfies both keeps the prefix portable between drivers.
BUS_PREFIX_RE = re.compile(r"^[A-Za-z0-9\-_.~+%]*$")
HOST_RE = re.compile(r"^[A-Za-z0-9.:\-_%\[\]]+$")


class Kind:
    """Text: stripped, blank = the default. Subclasses parse further."""

    python_type: type = str

    def read(self, name: str, raw: str | None, default: str) -> Any:
        text = default if raw is None or raw.strip() == "" else raw.strip()
        return self.parse(name, text)

    def parse(self, name: str, text: str) -> Any:
        return text


@dataclass(frozen=True)
class Text(Kind):
    pass


@dataclass(frozen=True)
class Integer(Kind):
    minimum: int
    maximum: int
    python_type = int

    def parse(self, name: str, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {quote(text)}") from None
        if not self.minimum <= value <= self.maximum:
            raise ConfigError(
                name, f"must be between {self.minimum} and {self.maximum}, got {quote(text)}"
            )
        return value


@dataclass(frozen=True)
class Seconds(Kind):
    minimum: float
    maximum: float
    python_type = float

    def parse(self, name: str, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(name, f"must be a number of seconds, got {quote(text)}") from None
        if not self.minimum <= value <= self.maximum:
            raise ConfigError(
                name, f"must be between {self.minimum:g} and {self.maximum:g}, got {value:g}"
            )
        return value


@dataclass(frozen=True)
class Flag(Kind):
    python_type = bool

    def parse(self, name: str, text: str) -> bool:
        value = text.lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, got {quote(value)}")


@dataclass(frozen=True)
class Switch(Kind):
    """On when set to anything but "" or "0" (a switch for people, not a validated flag)."""

    python_type = bool

    def read(self, name: str, raw: str | None, default: str) -> bool:
        return (default if raw is None else raw) not in ("", "0")


@dataclass(frozen=True)
class Choice(Kind):
    choices: tuple[str, ...]
    upper: bool = False  # the value as the consumer wants it (LOG_LEVEL: logging's names)

    def parse(self, name: str, text: str) -> str:
        value = text.lower()
        if value not in self.choices:
            raise ConfigError(name, f"must be one of {', '.join(self.choices)}, got {quote(value)}")
        return value.upper() if self.upper else value


@dataclass(frozen=True)
class Login(Kind):
    def parse(self, name: str, text: str) -> str:
        login = text.lower().lstrip("@")
        if login and not is_login(login):
            raise ConfigError(name, f"not a Twitch login: {quote(login)}")
        return login


@dataclass(frozen=True)
class Token(Kind):
    """A bearer token the HTTP routes compare: set but blank would silently leave the route
    open, and a character HTTP headers cannot carry would never match."""

    def read(self, name: str, raw: str | None, default: str) -> str:
        if raw is None or raw == "":
            return default
        value = raw.strip()
        if not value:
            raise ConfigError(name, "is set but blank (unset it, or give a real token)")
        if not all(" " < char < "\x7f" for char in value):
            raise ConfigError(
                name, "must be printable ASCII without spaces (it is sent in an HTTP header)"
            )
        return value


@dataclass(frozen=True)
class HttpUrl(Kind):
    def parse(self, name: str, text: str) -> str:
        url = text.rstrip("/")
        parts = split_url(name, url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(name, f"must be an http(s) URL, got {quote(url)}")
        return url


@dataclass(frozen=True)
class WsUrl(Kind):
    def parse(self, name: str, text: str) -> str:
        parts = split_url(name, text)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigError(name, f"must be a ws(s) URL, got {quote(text)}")
        return text


@dataclass(frozen=True)
class NatsUrls(Kind):
    def parse(self, name: str, text: str) -> str:
        for part in text.split(","):
            if split_url(name, part.strip()).scheme not in ("nats", "tls", "ws", "wss"):
                raise ConfigError(name, "must be nats://, tls://, ws:// or wss:// URL(s)")
        return text


@dataclass(frozen=True)
class IrcUrl(Kind):
    python_type = IrcEndpoint

    def parse(self, name: str, text: str) -> IrcEndpoint:
        return parse_irc_url(text)


@dataclass(frozen=True)
class PortableName(Kind):
    """A name valid as a NATS KV key, a JetStream stream name and a Firestore id."""

    rule: str  # the rule as the error states it

    def parse(self, name: str, text: str) -> str:
        if not PORTABLE_NAME_RE.match(text):
            raise ConfigError(name, f"must be {self.rule}, got {quote(text)}")
        return text


@dataclass(frozen=True)
class InstanceId(PortableName):
    """Unset: generated here, once per process (Cloud Run gives instances no identity)."""

    def read(self, name: str, raw: str | None, default: str) -> str:
        if raw is None or not raw.strip():
            return f"ie-{secrets.token_hex(5)}"
        return self.parse(name, raw.strip())


@dataclass(frozen=True)
class BusPrefix(Kind):
    def read(self, name: str, raw: str | None, default: str) -> str:
        prefix = default if raw is None else raw  # taken as written: part of every subject
        if not BUS_PREFIX_RE.match(prefix):
            raise ConfigError(
                name, f"may hold only letters, digits and -_.~+%, got {quote(prefix)}"
            )
        if prefix.lower().startswith("goog"):
            raise ConfigError(name, "must not start with 'goog' (reserved by Pub/Sub)")
        return prefix


@dataclass(frozen=True)
class Host(Kind):
    """An address or host name to bind; whether it can be bound is checked at start."""

    def parse(self, name: str, text: str) -> str:
        if len(text) > 253 or not HOST_RE.match(text):
            raise ConfigError(name, f"not an address or host name: {quote(text)}")
        return text


@dataclass(frozen=True)
class DocumentPath(Kind):
    """A Firestore document path, ``collection/document`` (or deeper, in pairs)."""

    def parse(self, name: str, text: str) -> str:
        path = text.strip("/")
        parts = path.split("/") if path else []
        if parts and (len(parts) % 2 or not all(parts)):
            raise ConfigError(name, f"must be collection/document, got {quote(path)}")
        return path


@dataclass(frozen=True)
class SpoolDir(Kind):
    """A directory path, or ``off`` (no spool: memory only, nothing survives a restart)."""

    def parse(self, name: str, text: str) -> str:
        if text.lower() == "off":
            return ""
        if not text.startswith("/"):
            raise ConfigError(name, f"must be an absolute path or off, got {quote(text)}")
        return text


@dataclass(frozen=True)
class Channels(Kind):
    python_type = tuple

    def read(self, name: str, raw: str | None, default: str) -> tuple[str, ...]:
        return parse_channels(default if raw is None else raw)


def parse_channels(text: str) -> tuple[str, ...]:
    """``"#Foo, bar,,#baz"`` -> ``("foo", "bar", "baz")``: case, ``#`` and spaces around
    commas tolerated, order kept. ``"ba d"`` is an error, not two channels."""
    seen: dict[str, None] = {}
    for item in text.split(","):
        if not item.strip().lstrip("#"):
            continue
        login = channel_login(item)
        if login is None:
            raise ConfigError(
                "TWITCH_CHANNELS", f"not a Twitch channel login: {quote(item.strip())}"
            )
        seen.setdefault(login, None)
    return tuple(seen)


def read_channels_file(path: str) -> tuple[str, ...]:
    """Channel logins from a text file: one per line (commas also work); a line starting
    with ``# `` (hash, space) is a comment, ``#name`` is a channel."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(CHANNELS_FILE_MAX + 1)
    except OSError as error:
        raise ConfigError("TWITCH_CHANNELS_FILE", f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError("TWITCH_CHANNELS_FILE", f"{path}: not UTF-8 text") from None
    if len(text) > CHANNELS_FILE_MAX:  # never a silently cut list
        raise ConfigError("TWITCH_CHANNELS_FILE", f"{path}: over {CHANNELS_FILE_MAX} characters")
    lines = [line for line in text.splitlines() if not line.strip().startswith(("# ", "#\t"))]
    lines = [line for line in lines if line.strip() != "#"]
    try:
        return parse_channels(",".join(lines))
    except ConfigError as error:
        raise ConfigError("TWITCH_CHANNELS_FILE", f"{path}: {error.problem}") from None
