"""Service configuration, read once from the environment.

Every variable is named in README.md and architecture.yaml. A bad value stops start-up
with one ``ConfigError`` line that names the variable; secret values are never echoed.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ingress_egress.protocol.endpoint import IrcEndpoint
from ingress_egress.twitch.logins import channel_login, is_login

INGRESS_TOPIC = "internal.ingress.v1"
DLQ_TOPIC = "internal.ingress.dlq.v1"
FINALIZER_TOPIC = "internal.finalizer.v1"
# Cloud Run's /tmp is in memory: the spool survives a process restart within an instance.
DEFAULT_SPOOL_DIR = "/tmp/ingress-egress-spool"

BUS_DRIVERS = ("nats", "pubsub", "memory", "stdout")
IRC_URL_SCHEMES = {"irc": 6667, "ircs": 6697, "ws": 80, "wss": 443}
SECRET_VARIABLES = frozenset(
    {"TWITCH_CLIENT_SECRET", "TWITCH_OAUTH_TOKEN", "DEBUG_TOKEN", "ADMIN_TOKEN"}
)
LOG_FORMATS = ("auto", "json", "text")
OTEL_EXPORTERS = ("none", "otlp", "console")
TWITCH_SOURCES = ("irc", "eventsub")
CLUSTER_COORDINATIONS = ("none", "nats", "firestore")
# A cluster id and a stream name: a valid NATS KV key, JetStream stream name and Firestore id.
_PORTABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# EventSub over one WebSocket: 300 subscriptions, six per channel (sources/eventsub); beyond
# that a conduit, which needs an app token (TWITCH_CLIENT_SECRET).
EVENTSUB_MAX_CHANNELS = 50

# Pub/Sub topic names allow letters, digits and -_.~+% ; NATS subjects must not hold spaces
# or wildcards. One rule that satisfies both keeps the prefix portable between drivers.
_BUS_PREFIX_RE = re.compile(r"^[A-Za-z0-9\-_.~+%]*$")


CHANNELS_FILE_MAX = 1 << 20  # characters: 100,000 logins of 10 fit
QUOTE_CHARS = 40  # an error line quotes at most this much of a bad value


def _quote(value: str) -> str:
    """``repr`` of a bad value, cut to a short prefix: the error stays one short line."""
    if len(value) <= QUOTE_CHARS:
        return repr(value)
    return f"{value[:QUOTE_CHARS]!r}... ({len(value)} characters)"


def _split_url(name: str, url: str) -> SplitResult:
    """``urlsplit``, with its ValueError (``irc://[::1``) as a ConfigError naming ``name``."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - parsed lazily; may raise too
    except ValueError as error:
        raise ConfigError(name, f"not a valid URL ({error}): {_quote(url)}") from None
    return parts


class ConfigError(ValueError):
    """A configuration variable is missing or invalid. ``str()`` is one line naming it."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"configuration error: {variable}: {problem}")


@dataclass(frozen=True, slots=True)
class Settings:
    message_bus_driver: str = "stdout"
    nats_url: str = "nats://127.0.0.1:4222"
    nats_stream: str = "INGRESS"
    nats_ack_mode: str = "batch"
    nats_ack_batch: int = 256
    nats_ack_linger_ms: int = 2
    bus_prefix: str = ""
    twitch_bot_username: str = ""
    twitch_channels: tuple[str, ...] = ()
    twitch_client_id: str = field(default="", repr=False)
    twitch_client_secret: str = field(default="", repr=False)
    twitch_oauth_token: str = field(default="", repr=False)
    twitch_irc_url: IrcEndpoint = IrcEndpoint("ircs", "irc.chat.twitch.tv", 6697)
    twitch_oauth_url: str = "https://id.twitch.tv/oauth2"
    irc_reconnect_initial_ms: int = 1000
    irc_reconnect_max_ms: int = 30000
    publish_max_retries: int = 5
    publish_max_in_flight: int = 4096
    queue_max_messages: int = 50000
    port: int = 8080
    host: str = "0.0.0.0"
    google_cloud_project: str = ""
    firestore_tokens_collection: str = "twitch_tokens"
    firestore_lookup: str = "login"
    pubsub_create_topic: bool = False
    log_level: str = "INFO"
    log_format: str = "auto"
    debug_token: str = field(default="", repr=False)
    otel_traces_exporter: str = "none"
    otel_metrics_exporter: str = "none"
    twitch_source: str = "irc"
    twitch_eventsub_ws_url: str = "wss://eventsub.wss.twitch.tv/ws"
    twitch_helix_url: str = "https://api.twitch.tv/helix"
    # Chat at scale (connection pool, JOIN pacing, dynamic channels).
    twitch_channels_file: str = ""
    irc_channels_per_connection: int = 50
    irc_connect_interval_ms: int = 2000
    twitch_join_rate_limit: int = 20
    twitch_join_rate_window_ms: int = 10000
    irc_join_timeout_ms: int = 15000
    irc_failed_channel_retry_ms: int = 300000
    admin_token: str = field(default="", repr=False)
    twitch_channels_firestore_doc: str = ""
    twitch_channels_firestore_poll_ms: int = 30000
    # The durable spool (docs/delivery.md). Empty = none (memory only): the default when
    # Settings are built in code; SPOOL_DIR's default applies when read from the environment.
    spool_dir: str = ""
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_fsync_ms: int = 50
    nats_duplicate_window_s: int = 300
    # Cluster mode (docs/scaling.md): "none" is the single instance.
    cluster_coordination: str = "none"
    instance_id: str = ""
    cluster_name: str = "ingress-egress"
    cluster_heartbeat_ms: int = 2000
    cluster_member_ttl_ms: int = 10000
    cluster_replicas: int = 2
    cluster_handover_max_ms: int = 600000

    @property
    def ingress_subject(self) -> str:
        return f"{self.bus_prefix}{INGRESS_TOPIC}"

    @property
    def dlq_subject(self) -> str:
        return f"{self.bus_prefix}{DLQ_TOPIC}"

    @property
    def finalizer_subject(self) -> str:
        return f"{self.bus_prefix}{FINALIZER_TOPIC}"

    @property
    def identity(self) -> str:
        return self.twitch_bot_username or "anonymous"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return _Reader(env).settings()


class _Reader:
    """Reads and validates one variable at a time so each error names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str, default: str) -> str:
        value = self.env.get(name)
        return default if value is None or value.strip() == "" else value.strip()

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        text = self.raw(name, str(default))
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {_shown(name, text)}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(
                name, f"must be between {minimum} and {maximum}, got {_shown(name, text)}"
            )
        return value

    def boolean(self, name: str, default: bool) -> bool:
        text = self.raw(name, "true" if default else "false").lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, got {_shown(name, text)}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.raw(name, default).lower()
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {_quote(value)}")
        return value

    def secret(self, name: str) -> str:
        """A bearer token the HTTP routes compare: set but blank would silently leave the
        route open, and a character HTTP headers cannot carry would never match."""
        value = self.env.get(name)
        if value is None or value == "":
            return ""
        value = value.strip()
        if not value:
            raise ConfigError(name, "is set but blank (unset it, or give a real token)")
        if not all(" " < char < "\x7f" for char in value):
            raise ConfigError(
                name, "must be printable ASCII without spaces (it is sent in an HTTP header)"
            )
        return value

    def settings(self) -> Settings:
        initial = self.integer("IRC_RECONNECT_INITIAL_MS", 1000, 1, 3_600_000)
        # At least 100 ms: the backoff must be able to slow reconnects below 10 a second.
        maximum = self.integer("IRC_RECONNECT_MAX_MS", 30000, 100, 3_600_000)
        if maximum < initial:
            raise ConfigError(
                "IRC_RECONNECT_MAX_MS", f"must be >= IRC_RECONNECT_INITIAL_MS ({initial})"
            )
        bot = self.raw("TWITCH_BOT_USERNAME", "").lower().lstrip("@")
        if bot and not is_login(bot):
            raise ConfigError("TWITCH_BOT_USERNAME", f"not a Twitch login: {_quote(bot)}")
        driver = self.choice("MESSAGE_BUS_DRIVER", "stdout", BUS_DRIVERS)
        settings = Settings(
            message_bus_driver=driver,
            nats_url=self.nats_url(),
            nats_stream=self.stream_name(),
            nats_ack_mode=self.choice("NATS_ACK_MODE", "batch", ("batch", "each")),
            nats_ack_batch=self.integer("NATS_ACK_BATCH", 256, 1, 10_000),
            nats_ack_linger_ms=self.integer("NATS_ACK_LINGER_MS", 2, 0, 1000),
            bus_prefix=self.bus_prefix(),
            twitch_bot_username=bot,
            twitch_channels=self.channels(),
            twitch_client_id=self.raw("TWITCH_CLIENT_ID", ""),
            twitch_client_secret=self.raw("TWITCH_CLIENT_SECRET", ""),
            twitch_oauth_token=self.raw("TWITCH_OAUTH_TOKEN", ""),
            twitch_irc_url=parse_irc_url(
                self.raw("TWITCH_IRC_URL", "ircs://irc.chat.twitch.tv:6697")
            ),
            twitch_oauth_url=self.http_url("TWITCH_OAUTH_URL", "https://id.twitch.tv/oauth2"),
            irc_reconnect_initial_ms=initial,
            irc_reconnect_max_ms=maximum,
            publish_max_retries=self.integer("PUBLISH_MAX_RETRIES", 5, 0, 100),
            # A burst beyond the window spills to the spool and is read back, which on NATS
            # cost twice the CPU per envelope (bench: serve drained 42-55k msg/s with a
            # 10,000 window and 1,024 in flight, 95k with these; docs/delivery.md).
            publish_max_in_flight=self.integer("PUBLISH_MAX_IN_FLIGHT", 4096, 1, 65536),
            queue_max_messages=self.integer("QUEUE_MAX_MESSAGES", 50000, 1, 10_000_000),
            port=self.integer("PORT", 8080, 0, 65535),
            host=self.host(),
            google_cloud_project=self.raw("GOOGLE_CLOUD_PROJECT", ""),
            firestore_tokens_collection=self.raw("FIRESTORE_TOKENS_COLLECTION", "twitch_tokens"),
            firestore_lookup=self.choice("FIRESTORE_LOOKUP", "login", ("login", "user_id")),
            pubsub_create_topic=self.boolean("PUBSUB_CREATE_TOPIC", False),
            log_level=self.choice(
                "LOG_LEVEL", "info", ("debug", "info", "warning", "error")
            ).upper(),
            log_format=self.choice("LOG_FORMAT", "auto", LOG_FORMATS),
            debug_token=self.secret("DEBUG_TOKEN"),
            otel_traces_exporter=self.otel_exporter(
                "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            ),
            otel_metrics_exporter=self.otel_exporter(
                "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"
            ),
            twitch_source=self.choice("TWITCH_SOURCE", "irc", TWITCH_SOURCES),
            twitch_eventsub_ws_url=self.ws_url(
                "TWITCH_EVENTSUB_WS_URL", "wss://eventsub.wss.twitch.tv/ws"
            ),
            twitch_helix_url=self.http_url("TWITCH_HELIX_URL", "https://api.twitch.tv/helix"),
            **self.chat_scale(),
            spool_dir=self.spool_dir(),
            spool_max_bytes=self.integer("SPOOL_MAX_BYTES", 256 * 1024 * 1024, 65536, 1 << 40),
            spool_fsync_ms=self.integer("SPOOL_FSYNC_MS", 50, 1, 10_000),
            nats_duplicate_window_s=self.integer("NATS_DUPLICATE_WINDOW_S", 300, 1, 86_400),
            **self.cluster(),
        )
        if settings.twitch_source == "eventsub":
            self.check_eventsub(settings)
        elif bot and not settings.twitch_oauth_token and not self.uses_firestore(settings):
            raise ConfigError(
                "TWITCH_OAUTH_TOKEN",
                "is required with TWITCH_BOT_USERNAME (or tokens from Firestore: "
                "GOOGLE_CLOUD_PROJECT); leave TWITCH_BOT_USERNAME empty to read anonymously",
            )
        if settings.cluster_coordination != "none":
            self.check_cluster(settings)
        return settings

    def cluster(self) -> dict[str, Any]:
        """Cluster mode (docs/scaling.md, "The cluster")."""
        heartbeat = self.integer("CLUSTER_HEARTBEAT_MS", 2000, 100, 60_000)
        ttl = self.integer("CLUSTER_MEMBER_TTL_MS", 10000, 1000, 600_000)
        if ttl < 2 * heartbeat:
            raise ConfigError(
                "CLUSTER_MEMBER_TTL_MS",
                f"must be at least twice CLUSTER_HEARTBEAT_MS ({heartbeat}), got {ttl}",
            )
        return {
            "cluster_coordination": self.choice(
                "CLUSTER_COORDINATION", "none", CLUSTER_COORDINATIONS
            ),
            "instance_id": self.cluster_id("INSTANCE_ID", f"ie-{secrets.token_hex(5)}"),
            "cluster_name": self.cluster_id("CLUSTER_NAME", "ingress-egress"),
            "cluster_heartbeat_ms": heartbeat,
            "cluster_member_ttl_ms": ttl,
            "cluster_replicas": self.integer("CLUSTER_REPLICAS", 2, 1, 16),
            "cluster_handover_max_ms": self.integer(
                "CLUSTER_HANDOVER_MAX_MS", 600000, 1000, 86_400_000
            ),
        }

    def cluster_id(self, name: str, default: str) -> str:
        value = self.raw(name, default)
        if not _PORTABLE_NAME_RE.match(value):
            raise ConfigError(name, f"must be 1-64 letters, digits, - or _, got {_quote(value)}")
        return value

    def check_cluster(self, settings: Settings) -> None:
        """Cluster mode reads IRC anonymously: a bot account's JOIN budget and its
        100-channel cap are per account, which N members cannot share safely."""
        if settings.twitch_source != "irc":
            raise ConfigError(
                "CLUSTER_COORDINATION", "needs TWITCH_SOURCE=irc (EventSub is not clustered)"
            )
        if settings.twitch_bot_username:
            raise ConfigError(
                "CLUSTER_COORDINATION",
                "reads anonymously: unset TWITCH_BOT_USERNAME (a bot account's JOIN rate and "
                "100-channel cap are per account, see docs/scaling.md)",
            )
        if settings.cluster_coordination == "firestore" and not self.uses_firestore(settings):
            raise ConfigError(
                "GOOGLE_CLOUD_PROJECT", "is required when CLUSTER_COORDINATION=firestore"
            )

    def uses_firestore(self, settings: Settings) -> bool:
        return bool(settings.google_cloud_project or self.raw("FIRESTORE_EMULATOR_HOST", ""))

    def host(self) -> str:
        """An address or host name to bind; whether it can be bound is checked at start."""
        host = self.raw("HOST", "0.0.0.0")
        if len(host) > 253 or not re.match(r"^[A-Za-z0-9.:\-_%\[\]]+$", host):
            raise ConfigError("HOST", f"not an address or host name: {_quote(host)}")
        return host

    def check_eventsub(self, settings: Settings) -> None:
        """EventSub reads chat as a user: no anonymous mode, and a token must be available."""
        why = "is required when TWITCH_SOURCE=eventsub"
        if not settings.twitch_bot_username:
            raise ConfigError("TWITCH_BOT_USERNAME", why)
        if not settings.twitch_client_id:
            raise ConfigError("TWITCH_CLIENT_ID", why)
        if not (settings.twitch_oauth_token or self.uses_firestore(settings)):
            raise ConfigError(
                "TWITCH_OAUTH_TOKEN",
                "is required when TWITCH_SOURCE=eventsub (or tokens from Firestore: "
                "GOOGLE_CLOUD_PROJECT)",
            )
        if not settings.twitch_oauth_url.endswith("/oauth2"):
            raise ConfigError("TWITCH_OAUTH_URL", "must end in /oauth2 when TWITCH_SOURCE=eventsub")
        # More channels than one socket holds: a conduit, which needs an app token.
        if len(settings.twitch_channels) > EVENTSUB_MAX_CHANNELS and not (
            settings.twitch_client_secret
        ):
            raise ConfigError(
                "TWITCH_CLIENT_SECRET",
                f"is required for more than {EVENTSUB_MAX_CHANNELS} channels on EventSub "
                "(a conduit, read with an app token; see docs/eventsub.md)",
            )

    def ws_url(self, name: str, default: str) -> str:
        url = self.raw(name, default)
        parts = _split_url(name, url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ConfigError(name, f"must be a ws(s) URL, got {_quote(url)}")
        return url

    def channels(self) -> tuple[str, ...]:
        """``TWITCH_CHANNELS_FILE`` when set (re-read on SIGHUP), else ``TWITCH_CHANNELS``."""
        channels_file = self.raw("TWITCH_CHANNELS_FILE", "")
        if channels_file:
            return read_channels_file(channels_file)
        return parse_channels(self.env.get("TWITCH_CHANNELS", ""))

    def chat_scale(self) -> dict[str, Any]:
        """Pool, JOIN pacing and dynamic-channel settings (docs/scaling.md)."""
        return {
            "twitch_channels_file": self.raw("TWITCH_CHANNELS_FILE", ""),
            "irc_channels_per_connection": self.integer(
                "IRC_CHANNELS_PER_CONNECTION", 50, 1, 10_000
            ),
            "irc_connect_interval_ms": self.integer("IRC_CONNECT_INTERVAL_MS", 2000, 0, 600_000),
            "twitch_join_rate_limit": self.integer("TWITCH_JOIN_RATE_LIMIT", 20, 1, 100_000),
            "twitch_join_rate_window_ms": self.integer(
                "TWITCH_JOIN_RATE_WINDOW_MS", 10000, 1, 3_600_000
            ),
            "irc_join_timeout_ms": self.integer("IRC_JOIN_TIMEOUT_MS", 15000, 1, 3_600_000),
            "irc_failed_channel_retry_ms": self.integer(
                "IRC_FAILED_CHANNEL_RETRY_MS", 300000, 1, 86_400_000
            ),
            "admin_token": self.secret("ADMIN_TOKEN"),
            "twitch_channels_firestore_doc": self.document_path("TWITCH_CHANNELS_FIRESTORE_DOC"),
            "twitch_channels_firestore_poll_ms": self.integer(
                "TWITCH_CHANNELS_FIRESTORE_POLL_MS", 30000, 100, 86_400_000
            ),
        }

    def document_path(self, name: str) -> str:
        """A Firestore document path, ``collection/document`` (or deeper, in pairs)."""
        path = self.raw(name, "").strip("/")
        parts = path.split("/") if path else []
        if parts and (len(parts) % 2 or not all(parts)):
            raise ConfigError(name, f"must be collection/document, got {_quote(path)}")
        return path

    def spool_dir(self) -> str:
        """A directory path, or ``off`` (no spool: memory only, nothing survives a restart)."""
        value = self.raw("SPOOL_DIR", DEFAULT_SPOOL_DIR)
        if value.lower() == "off":
            return ""
        if not value.startswith("/"):
            raise ConfigError("SPOOL_DIR", f"must be an absolute path or off, got {_quote(value)}")
        return value

    def otel_exporter(self, name: str, signal_endpoint: str) -> str:
        """The standard ``OTEL_*_EXPORTER`` variable, but ``none`` unless something is set:
        an explicit exporter, or an OTLP endpoint (then ``otlp``). ``OTEL_SDK_DISABLED``
        turns everything off."""
        if self.boolean("OTEL_SDK_DISABLED", False):
            return "none"
        endpoint = self.raw("OTEL_EXPORTER_OTLP_ENDPOINT", "") or self.raw(signal_endpoint, "")
        value = self.raw(name, "otlp" if endpoint else "none").lower()
        if value not in OTEL_EXPORTERS:
            raise ConfigError(
                name, f"must be one of {', '.join(OTEL_EXPORTERS)}, got {_quote(value)}"
            )
        return value

    def nats_url(self) -> str:
        url = self.raw("NATS_URL", "nats://127.0.0.1:4222")
        for part in url.split(","):
            scheme = _split_url("NATS_URL", part.strip()).scheme
            if scheme not in ("nats", "tls", "ws", "wss"):
                raise ConfigError("NATS_URL", "must be nats://, tls://, ws:// or wss:// URL(s)")
        return url

    def stream_name(self) -> str:
        name = self.raw("NATS_STREAM", "INGRESS")
        if not _PORTABLE_NAME_RE.match(name):
            raise ConfigError("NATS_STREAM", f"must be letters, digits, - or _, got {_quote(name)}")
        return name

    def bus_prefix(self) -> str:
        prefix = self.env.get("BUS_PREFIX", "")
        if not _BUS_PREFIX_RE.match(prefix):
            raise ConfigError(
                "BUS_PREFIX", f"may hold only letters, digits and -_.~+%, got {_quote(prefix)}"
            )
        if prefix.lower().startswith("goog"):
            raise ConfigError("BUS_PREFIX", "must not start with 'goog' (reserved by Pub/Sub)")
        return prefix

    def http_url(self, name: str, default: str) -> str:
        url = self.raw(name, default).rstrip("/")
        parts = _split_url(name, url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(name, f"must be an http(s) URL, got {_quote(url)}")
        return url


def channel_list(env: Mapping[str, str]) -> tuple[str, ...]:
    """The wanted channels as configured now (for a reload on SIGHUP)."""
    return _Reader(env).channels()


def _shown(name: str, value: str) -> str:
    return "<redacted>" if name in SECRET_VARIABLES else _quote(value)


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
                "TWITCH_CHANNELS", f"not a Twitch channel login: {_quote(item.strip())}"
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


def parse_irc_url(url: str) -> IrcEndpoint:
    parts = _split_url("TWITCH_IRC_URL", url)
    scheme = parts.scheme.lower()
    if scheme not in IRC_URL_SCHEMES:
        raise ConfigError(
            "TWITCH_IRC_URL", f"scheme must be irc, ircs, ws or wss, got {_quote(url)}"
        )
    if not parts.hostname:
        raise ConfigError("TWITCH_IRC_URL", f"has no host: {_quote(url)}")
    try:
        port = parts.port or IRC_URL_SCHEMES[scheme]
    except ValueError:
        raise ConfigError("TWITCH_IRC_URL", f"has an invalid port: {_quote(url)}") from None
    return IrcEndpoint(scheme, parts.hostname, port, parts.path if scheme in ("ws", "wss") else "")
