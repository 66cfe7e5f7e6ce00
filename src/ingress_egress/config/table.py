"""Every configuration variable, declared once: name, kind (type, bounds, choices), default,
whether it is secret, and where its typed value lives (``settings.<group>.<field>``).

``settings.py`` builds the typed, nested ``Settings`` from this table; architecture.yaml
and docs/configuration.md describe the same variables (tests/test_architecture.py checks
both against this table). A new group of variables is one ``_block`` here, one small
frozen dataclass in ``settings.py`` (its fields named as the block's rows) and that
dataclass as a field of ``Settings``; the builder needs no change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingress_egress.config.kinds import (
    BusPrefix,
    Channels,
    Choice,
    DocumentPath,
    Flag,
    Host,
    HttpUrl,
    InstanceId,
    Integer,
    IrcUrl,
    Kind,
    Login,
    NatsUrls,
    PortableName,
    Seconds,
    SpoolDir,
    Switch,
    Text,
    Token,
    WsUrl,
)

BUS_DRIVERS = ("nats", "pubsub", "memory", "stdout")
TWITCH_SOURCES = ("irc", "eventsub")
CLUSTER_COORDINATIONS = ("none", "nats", "firestore")
EGRESS_TRANSPORTS = ("auto", "irc", "helix", "off")
# Twitch's verified-bot allowance (messages per 30 s): no account may send more.
MAX_SEND_RATE = 7500
LOG_FORMATS = ("auto", "json", "text")
OTEL_EXPORTERS = ("none", "otlp", "console")
# Cloud Run's /tmp is in memory: the spool survives a process restart within an instance.
DEFAULT_SPOOL_DIR = "/tmp/ingress-egress-spool"
STREAM_NAME_RULE = "letters, digits, - or _"
CLUSTER_ID_RULE = "1-64 letters, digits, - or _"


@dataclass(frozen=True)
class Variable:
    name: str  # the environment variable
    group: str  # the ``Settings`` attribute holding it ...
    field: str  # ... and the group's field
    kind: Kind
    default: str  # as an operator would write it ("" = empty)
    meaning: str
    secret: bool = False

    def read(self, env: Mapping[str, str]) -> Any:
        """The typed value from ``env`` (a mapping of environment variables)."""
        return self.kind.read(self.name, env.get(self.name), self.default)


def _block(group: str, *rows: tuple[Any, ...]) -> tuple[Variable, ...]:
    """One group's variables: ``(name, field, kind, default, meaning[, secret])`` rows."""
    return tuple(Variable(row[0], group, *row[1:]) for row in rows)


SECRET = True
NO_DEFAULT = ""

VARIABLES: tuple[Variable, ...] = (
    *_block(
        "bus",
        ("MESSAGE_BUS_DRIVER", "driver", Choice(BUS_DRIVERS), "stdout", "the message bus"),
        ("NATS_URL", "nats_url", NatsUrls(), "nats://127.0.0.1:4222", "NATS server URL(s)"),
        ("NATS_STREAM", "nats_stream", PortableName(STREAM_NAME_RULE), "INGRESS", "stream"),
        ("NATS_ACK_MODE", "nats_ack_mode", Choice(("batch", "each")), "batch", "ack waits"),
        ("NATS_ACK_BATCH", "nats_ack_batch", Integer(1, 10_000), "256", "acks per barrier"),
        ("NATS_ACK_LINGER_MS", "nats_ack_linger_ms", Integer(0, 1000), "2", "batch linger"),
        (
            "NATS_DUPLICATE_WINDOW_S",
            "nats_duplicate_window_s",
            Integer(1, 86_400),
            "300",
            "JetStream de-duplication window of the stream",
        ),
        ("BUS_PREFIX", "prefix", BusPrefix(), "", "prefix of every topic/subject"),
        ("PUBSUB_CREATE_TOPIC", "pubsub_create_topic", Flag(), "false", "create missing topics"),
        (
            "PUBSUB_EMULATOR_HOST",
            "pubsub_emulator_host",
            Text(),
            "",
            "Pub/Sub emulator (read by google-cloud-pubsub too; shown in /_debug/twitch)",
        ),
    ),
    *_block(
        "delivery",
        ("PUBLISH_MAX_RETRIES", "max_retries", Integer(0, 100), "5", "retries per envelope"),
        # A burst beyond the window spills to the spool and is read back, which on NATS
        # cost twice the CPU per envelope (bench: serve drained 42-55k msg/s with a
        # 10,000 window and 1,024 in flight, 95k with these; docs/delivery.md).
        (
            "PUBLISH_MAX_IN_FLIGHT",
            "max_in_flight",
            Integer(1, 65536),
            "4096",
            "envelopes sent and not yet acknowledged",
        ),
        (
            "QUEUE_MAX_MESSAGES",
            "queue_max_messages",
            Integer(1, 10_000_000),
            "50000",
            "the in-memory window; beyond it envelopes wait in the spool",
        ),
    ),
    *_block(
        "spool",
        ("SPOOL_DIR", "directory", SpoolDir(), DEFAULT_SPOOL_DIR, "durable spool; off = none"),
        (
            "SPOOL_MAX_BYTES",
            "max_bytes",
            Integer(65536, 1 << 40),
            "268435456",
            "spool size cap",
        ),
        ("SPOOL_FSYNC_MS", "fsync_ms", Integer(1, 10_000), "50", "write and fsync interval"),
    ),
    *_block(
        "twitch",
        ("TWITCH_SOURCE", "source", Choice(TWITCH_SOURCES), "irc", "IRC or EventSub"),
        ("TWITCH_BOT_USERNAME", "bot_username", Login(), "", "empty = anonymous read-only"),
        ("TWITCH_CHANNELS", "channels", Channels(), "", "comma-separated channel logins"),
        (
            "TWITCH_CHANNELS_FILE",
            "channels_file",
            Text(),
            "",
            "file of channel logins; replaces TWITCH_CHANNELS, re-read on SIGHUP",
        ),
        (
            "TWITCH_IRC_URL",
            "irc_url",
            IrcUrl(),
            "ircs://irc.chat.twitch.tv:6697",
            "Twitch IRC endpoint",
        ),
        ("TWITCH_OAUTH_URL", "oauth_url", HttpUrl(), "https://id.twitch.tv/oauth2", "OAuth"),
        (
            "TWITCH_EVENTSUB_WS_URL",
            "eventsub_ws_url",
            WsUrl(),
            "wss://eventsub.wss.twitch.tv/ws",
            "EventSub WebSocket",
        ),
        ("TWITCH_HELIX_URL", "helix_url", HttpUrl(), "https://api.twitch.tv/helix", "Helix API"),
        (
            "IRC_RECONNECT_INITIAL_MS",
            "reconnect_initial_ms",
            Integer(1, 3_600_000),
            "1000",
            "first reconnect delay",
        ),
        # At least 100 ms: the backoff must be able to slow reconnects below 10 a second.
        (
            "IRC_RECONNECT_MAX_MS",
            "reconnect_max_ms",
            Integer(100, 3_600_000),
            "30000",
            "longest reconnect delay",
        ),
        (
            "TWITCH_CHANNELS_FIRESTORE_DOC",
            "channels_firestore_doc",
            DocumentPath(),
            "",
            "collection/document whose array field channels is the wanted list, polled",
        ),
        (
            "TWITCH_CHANNELS_FIRESTORE_POLL_MS",
            "channels_firestore_poll_ms",
            Integer(100, 86_400_000),
            "30000",
            "poll interval of that document",
        ),
        (
            "TWITCH_READ_AS",
            "read_as",
            Choice(("auto", "anonymous")),
            "auto",
            "auto = as TWITCH_BOT_USERNAME (anonymously in cluster mode); anonymous = always",
        ),
    ),
    *_block(
        "irc_scale",
        (
            "IRC_CHANNELS_PER_CONNECTION",
            "channels_per_connection",
            Integer(1, 10_000),
            "50",
            "channels per pool connection",
        ),
        (
            "IRC_CONNECT_INTERVAL_MS",
            "connect_interval_ms",
            Integer(0, 600_000),
            "2000",
            "at most one new connection per interval, reconnects included",
        ),
        (
            "TWITCH_JOIN_RATE_LIMIT",
            "join_rate_limit",
            Integer(1, 100_000),
            "20",
            "JOINs per window per identity",
        ),
        (
            "TWITCH_JOIN_RATE_WINDOW_MS",
            "join_rate_window_ms",
            Integer(1, 3_600_000),
            "10000",
            "the JOIN window",
        ),
        (
            "IRC_JOIN_TIMEOUT_MS",
            "join_timeout_ms",
            Integer(1, 3_600_000),
            "15000",
            "a JOIN not confirmed in time is sent again",
        ),
        (
            "IRC_FAILED_CHANNEL_RETRY_MS",
            "failed_channel_retry_ms",
            Integer(1, 86_400_000),
            "300000",
            "retry interval for channels Twitch refused",
        ),
    ),
    *_block(
        "credentials",
        ("TWITCH_CLIENT_ID", "client_id", Text(), "", "the Twitch application", SECRET),
        ("TWITCH_CLIENT_SECRET", "client_secret", Text(), "", "token refresh, conduits", SECRET),
        ("TWITCH_OAUTH_TOKEN", "oauth_token", Text(), "", "local use: the bot's token", SECRET),
        (
            "FIRESTORE_TOKENS_COLLECTION",
            "tokens_collection",
            Text(),
            "twitch_tokens",
            "Firestore collection of bot tokens",
        ),
        ("FIRESTORE_LOOKUP", "lookup", Choice(("login", "user_id")), "login", "token key"),
        ("TWITCH_BOT_USER_ID", "bot_user_id", Text(), "", "identity when FIRESTORE_LOOKUP=user_id"),
        (
            "TWITCH_TOKEN_REFRESH_MARGIN_S",
            "refresh_margin_s",
            Seconds(0.0, 86_400.0),
            "300",
            "refresh this long before expiry",
        ),
        (
            "TWITCH_TOKEN_VALIDATE_INTERVAL_S",
            "validate_interval_s",
            Seconds(1.0, 3600.0),
            "3300",
            "validate at least this often (Twitch wants hourly)",
        ),
        (
            "TWITCH_FORCE_REFRESH_MIN_INTERVAL_S",
            "force_refresh_min_interval_s",
            Seconds(0.0, 3600.0),
            "60",
            "forced refreshes at most this often",
        ),
        (
            "TWITCH_TOKEN_REFRESH_LEASE_S",
            "refresh_lease_s",
            Seconds(0.0, 600.0),
            "45",
            "refresh lease between instances; 0 = none",
        ),
        ("TWITCH_OAUTH_TIMEOUT_S", "oauth_timeout_s", Seconds(0.1, 120.0), "10", "OAuth calls"),
        ("FIRESTORE_TIMEOUT_S", "firestore_timeout_s", Seconds(0.1, 120.0), "10", "Firestore"),
    ),
    *_block(
        "google",
        ("GOOGLE_CLOUD_PROJECT", "project", Text(), "", "Google Cloud project"),
        ("FIRESTORE_EMULATOR_HOST", "firestore_emulator_host", Text(), "", "local/tests only"),
    ),
    *_block(
        "cluster",
        (
            "CLUSTER_COORDINATION",
            "coordination",
            Choice(CLUSTER_COORDINATIONS),
            "none",
            "cluster mode; none = one instance",
        ),
        ("INSTANCE_ID", "instance_id", InstanceId(CLUSTER_ID_RULE), NO_DEFAULT, "member id"),
        (
            "CLUSTER_NAME",
            "name",
            PortableName(CLUSTER_ID_RULE),
            "ingress-egress",
            "namespaces the membership",
        ),
        ("CLUSTER_HEARTBEAT_MS", "heartbeat_ms", Integer(100, 60_000), "2000", "heartbeat"),
        (
            "CLUSTER_MEMBER_TTL_MS",
            "member_ttl_ms",
            Integer(1000, 600_000),
            "10000",
            "a record older is a dead member",
        ),
        ("CLUSTER_REPLICAS", "replicas", Integer(1, 16), "2", "members reading each channel"),
        (
            "CLUSTER_HANDOVER_MAX_MS",
            "handover_max_ms",
            Integer(1000, 86_400_000),
            "600000",
            "a lost channel is kept until its new readers join, or this long",
        ),
    ),
    *_block(
        "egress",
        (
            "EGRESS_TRANSPORT",
            "transport",
            Choice(EGRESS_TRANSPORTS),
            "auto",
            "auto = off without a bot, helix with user:write:chat and a client id, else irc",
        ),
        (
            "EGRESS_RATE_LIMIT",
            "rate_limit",
            Integer(1, MAX_SEND_RATE),
            "20",
            "messages per 30 s while the bot is not privileged in the channel",
        ),
        (
            "EGRESS_RATE_LIMIT_PRIVILEGED",
            "rate_limit_privileged",
            Integer(1, MAX_SEND_RATE),
            "100",
            "messages per 30 s where broadcaster, moderator or VIP",
        ),
        ("EGRESS_LONG_TEXT", "long_text", Choice(("split", "drop")), "split", "over 500"),
        ("EGRESS_REPEAT", "repeat", Choice(("distinct", "drop")), "distinct", "repeats"),
        (
            "EGRESS_MAX_AGE_MS",
            "max_age_ms",
            Integer(1000, 86_400_000),
            "120000",
            "a command older than this when its turn comes is expired, not sent",
        ),
        (
            "EGRESS_ECHO_TIMEOUT_MS",
            "echo_timeout_ms",
            Integer(100, 3_600_000),
            "10000",
            "a sent message not seen back in chat by then is counted unseen",
        ),
        (
            "NATS_EGRESS_STREAM",
            "nats_stream",
            PortableName(STREAM_NAME_RULE),
            "EGRESS",
            "created only when no stream captures the egress subject",
        ),
        (
            "EGRESS_CONSUMER",
            "consumer",
            PortableName(STREAM_NAME_RULE),
            "ingress-egress",
            "durable JetStream consumer of the commands",
        ),
        (
            "EGRESS_SUBSCRIPTION",
            "subscription",
            PortableName(STREAM_NAME_RULE),
            "ingress-egress-egress",
            "Pub/Sub subscription of the commands",
        ),
    ),
    *_block(
        "http",
        ("PORT", "port", Integer(0, 65535), "8080", "HTTP port"),
        ("HOST", "host", Host(), "0.0.0.0", "HTTP bind address"),
        ("DEBUG_TOKEN", "debug_token", Token(), "", "bearer for /_debug/twitch", SECRET),
        ("ADMIN_TOKEN", "admin_token", Token(), "", "bearer for /_admin/channels", SECRET),
    ),
    *_block(
        "telemetry",
        (
            "LOG_LEVEL",
            "log_level",
            Choice(("debug", "info", "warning", "error"), upper=True),
            "info",
            "log level",
        ),
        ("LOG_FORMAT", "log_format", Choice(LOG_FORMATS), "auto", "auto, json or text"),
        ("OTEL_SDK_DISABLED", "sdk_disabled", Flag(), "false", "turns every exporter off"),
        (
            "OTEL_TRACES_EXPORTER",
            "traces_exporter",
            Choice(OTEL_EXPORTERS),
            "none",
            "otlp when unset and an OTLP endpoint is set",
        ),
        (
            "OTEL_METRICS_EXPORTER",
            "metrics_exporter",
            Choice(OTEL_EXPORTERS),
            "none",
            "otlp when unset and an OTLP endpoint is set",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint", Text(), "", "OTLP/HTTP base URL"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otlp_traces_endpoint", Text(), "", "traces"),
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "otlp_metrics_endpoint", Text(), "", "metrics"),
    ),
    *_block(
        "runtime",
        (
            "INGRESS_EGRESS_PURE_PYTHON",
            "pure_python",
            Switch(),
            "",
            "any value but empty or 0: the pure-Python hot path, not the C extension",
        ),
    ),
)

BY_NAME: dict[str, Variable] = {variable.name: variable for variable in VARIABLES}
SECRET_VARIABLES = frozenset(variable.name for variable in VARIABLES if variable.secret)
