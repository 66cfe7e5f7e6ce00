"""The typed, nested settings built from the variable table (``table.py``).

Each group is a small frozen dataclass whose fields are the table's ``field`` names for
that group; ``Settings`` holds one of each. Cross-variable rules (which variable needs
which) run once, after every variable is read, each failing with one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from ingress_egress.config.endpoints import IrcEndpoint
from ingress_egress.config.errors import ConfigError
from ingress_egress.config.kinds import read_channels_file
from ingress_egress.config.table import BY_NAME, VARIABLES

INGRESS_TOPIC = "internal.ingress.v1"
EGRESS_TOPIC = "internal.egress.v1"
DLQ_TOPIC = "internal.ingress.dlq.v1"
FINALIZER_TOPIC = "internal.finalizer.v1"
# EventSub over one WebSocket: 300 subscriptions, six per channel (sources/eventsub); beyond
# that a conduit, which needs an app token (TWITCH_CLIENT_SECRET).
EVENTSUB_MAX_CHANNELS = 50


@dataclass(frozen=True, slots=True)
class BusSettings:
    driver: str
    nats_url: str
    nats_stream: str
    nats_ack_mode: str
    nats_ack_batch: int
    nats_ack_linger_ms: int
    nats_duplicate_window_s: int
    prefix: str
    pubsub_create_topic: bool
    pubsub_emulator_host: str

    @property
    def ingress_subject(self) -> str:
        return f"{self.prefix}{INGRESS_TOPIC}"

    @property
    def dlq_subject(self) -> str:
        return f"{self.prefix}{DLQ_TOPIC}"

    @property
    def finalizer_subject(self) -> str:
        return f"{self.prefix}{FINALIZER_TOPIC}"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_retries: int
    max_in_flight: int
    queue_max_messages: int


@dataclass(frozen=True, slots=True)
class SpoolSettings:
    directory: str  # "" = no spool (memory only)
    max_bytes: int
    fsync_ms: int


@dataclass(frozen=True, slots=True)
class TwitchSettings:
    source: str
    bot_username: str
    channels: tuple[str, ...]  # the wanted list (TWITCH_CHANNELS_FILE's when set)
    channels_file: str
    irc_url: IrcEndpoint
    oauth_url: str
    eventsub_ws_url: str
    helix_url: str
    reconnect_initial_ms: int
    reconnect_max_ms: int
    channels_firestore_doc: str
    channels_firestore_poll_ms: int
    read_as: str  # auto | anonymous

    @property
    def endpoint(self) -> str:
        """Where this source reads chat, for logs and ``/_debug/twitch``."""
        return self.eventsub_ws_url if self.source == "eventsub" else str(self.irc_url)


@dataclass(frozen=True, slots=True)
class IrcScaleSettings:
    """The IRC pool's chat-scale numbers (docs/scaling.md)."""

    channels_per_connection: int
    connect_interval_ms: int
    join_rate_limit: int
    join_rate_window_ms: int
    join_timeout_ms: int
    failed_channel_retry_ms: int


@dataclass(frozen=True, slots=True)
class CredentialsSettings:
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    oauth_token: str = field(repr=False)
    tokens_collection: str
    lookup: str
    bot_user_id: str
    refresh_margin_s: float
    validate_interval_s: float
    force_refresh_min_interval_s: float
    refresh_lease_s: float  # 0 = no lease
    oauth_timeout_s: float
    firestore_timeout_s: float


@dataclass(frozen=True, slots=True)
class GoogleSettings:
    project: str
    firestore_emulator_host: str

    @property
    def uses_firestore(self) -> bool:
        return bool(self.project or self.firestore_emulator_host)


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    coordination: str  # "none" = a single instance
    instance_id: str
    name: str
    heartbeat_ms: int
    member_ttl_ms: int
    replicas: int
    handover_max_ms: int

    @property
    def enabled(self) -> bool:
        return self.coordination != "none"


@dataclass(frozen=True, slots=True)
class EgressSettings:
    """Sending the platform's answers into chat as the bot (docs/egress.md)."""

    transport: str  # auto | irc | helix | off; auto is resolved once the token is known
    rate_limit: int
    rate_limit_privileged: int
    long_text: str
    repeat: str
    max_age_ms: int
    echo_timeout_ms: int
    nats_stream: str
    consumer: str
    subscription: str


@dataclass(frozen=True, slots=True)
class HttpSettings:
    port: int
    host: str
    debug_token: str = field(repr=False)
    admin_token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    log_level: str
    log_format: str
    sdk_disabled: bool
    traces_exporter: str  # the effective one (see ``_resolve_exporters``)
    metrics_exporter: str
    otlp_endpoint: str
    otlp_traces_endpoint: str
    otlp_metrics_endpoint: str


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    pure_python: bool  # the C extension is not used (INGRESS_EGRESS_PURE_PYTHON)


@dataclass(frozen=True, slots=True)
class Settings:
    bus: BusSettings
    delivery: DeliverySettings
    spool: SpoolSettings
    twitch: TwitchSettings
    irc_scale: IrcScaleSettings
    credentials: CredentialsSettings
    google: GoogleSettings
    cluster: ClusterSettings
    egress: EgressSettings
    http: HttpSettings
    telemetry: TelemetrySettings
    runtime: RuntimeSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Every variable read and checked; the first problem raises one ``ConfigError``."""
        values = {variable.name: variable.read(env) for variable in VARIABLES}
        _resolve_channels(values)
        _resolve_exporters(values, env)
        settings = _assemble(values)
        _check(settings)
        return settings

    @classmethod
    def defaults(cls, **changes: Any) -> Settings:
        """Built in code (tests, tools): the table's defaults, but no spool unless
        ``spool_dir`` is given, then ``changes`` (see ``replace``)."""
        return cls.from_env({"SPOOL_DIR": "off"}).replace(**changes)

    @property
    def reader_login(self) -> str:
        """The login chat is read as ("" = anonymous ``justinfan``): the bot's, unless
        ``TWITCH_READ_AS=anonymous`` or in cluster mode (members read anonymously; the bot
        only sends there)."""
        if self.twitch.read_as == "anonymous" or self.cluster.enabled:
            return ""
        return self.twitch.bot_username

    @property
    def reader_identity(self) -> str:
        return self.reader_login or "anonymous"

    @property
    def egress_subject(self) -> str:
        return f"{self.bus.prefix}{EGRESS_TOPIC}"

    @property
    def egress_enabled(self) -> bool:
        """Whether this instance may send at all: a bot identity and a transport not off."""
        return bool(self.twitch.bot_username) and self.egress.transport != "off"

    def replace(self, **changes: Any) -> Settings:
        """A copy with variables changed by their lower-case name (``port=0``,
        ``twitch_channels=("a",)``), typed values, not checked across variables."""
        groups: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            variable = BY_NAME.get(key.upper())
            if variable is None:
                raise TypeError(f"no configuration variable {key.upper()}")
            expected = variable.kind.python_type
            if expected is float and type(value) is int:
                value = float(value)  # seconds: 45 means 45.0
            if not isinstance(value, expected):
                raise TypeError(f"{key}: expected {expected.__name__}")
            groups.setdefault(variable.group, {})[variable.field] = value
        parts = {
            name: dataclasses.replace(getattr(self, name), **fields)
            for name, fields in groups.items()
        }
        return dataclasses.replace(self, **parts)


def channel_list(env: Mapping[str, str]) -> tuple[str, ...]:
    """The wanted channels as configured now (for a reload on SIGHUP)."""
    values = {name: BY_NAME[name].read(env) for name in ("TWITCH_CHANNELS", "TWITCH_CHANNELS_FILE")}
    _resolve_channels(values)
    channels: tuple[str, ...] = values["TWITCH_CHANNELS"]
    return channels


def read_variable(env: Mapping[str, str], name: str, default: str | None = None) -> Any:
    """One variable alone, typed and checked (``default``: a tool's own default text)."""
    variable = BY_NAME[name]
    if default is not None:
        variable = dataclasses.replace(variable, default=default)
    return variable.read(env)


def pure_python(env: Mapping[str, str]) -> bool:
    """``INGRESS_EGRESS_PURE_PYTHON`` alone: for tools that build a codec without Settings."""
    return bool(read_variable(env, "INGRESS_EGRESS_PURE_PYTHON"))


def _assemble(values: Mapping[str, Any]) -> Settings:
    """Each group's dataclass from its variables' values (the table says which)."""
    groups: dict[str, dict[str, Any]] = {}
    for variable in VARIABLES:
        groups.setdefault(variable.group, {})[variable.field] = values[variable.name]
    kinds = get_type_hints(Settings)
    return Settings(**{name: kinds[name](**fields) for name, fields in groups.items()})


def _resolve_channels(values: dict[str, Any]) -> None:
    """``TWITCH_CHANNELS_FILE`` when set (re-read on SIGHUP) replaces ``TWITCH_CHANNELS``."""
    if values["TWITCH_CHANNELS_FILE"]:
        values["TWITCH_CHANNELS"] = read_channels_file(values["TWITCH_CHANNELS_FILE"])


def _resolve_exporters(values: dict[str, Any], env: Mapping[str, str]) -> None:
    """The standard ``OTEL_*_EXPORTER`` variables, but ``none`` unless something is set: an
    explicit exporter, or an OTLP endpoint (then ``otlp``). ``OTEL_SDK_DISABLED`` turns
    everything off."""
    for name, signal_endpoint in (
        ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ("OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
    ):
        if values["OTEL_SDK_DISABLED"]:
            values[name] = "none"
        elif not (env.get(name) or "").strip():
            endpoint = values["OTEL_EXPORTER_OTLP_ENDPOINT"] or values[signal_endpoint]
            values[name] = "otlp" if endpoint else "none"


def _check(settings: Settings) -> None:
    twitch, cluster, egress = settings.twitch, settings.cluster, settings.egress
    if egress.rate_limit_privileged < egress.rate_limit:
        raise ConfigError(
            "EGRESS_RATE_LIMIT_PRIVILEGED", f"must be >= EGRESS_RATE_LIMIT ({egress.rate_limit})"
        )
    if egress.transport in ("irc", "helix") and not twitch.bot_username:
        raise ConfigError(
            "EGRESS_TRANSPORT", f"{egress.transport} sends as the bot: set TWITCH_BOT_USERNAME"
        )
    if egress.transport in ("irc", "helix") and settings.bus.driver not in ("nats", "pubsub"):
        raise ConfigError(
            "EGRESS_TRANSPORT",
            f"{egress.transport} takes its commands from the bus: set MESSAGE_BUS_DRIVER to "
            "nats or pubsub (or EGRESS_TRANSPORT=off)",
        )
    if egress.transport == "helix" and not settings.credentials.client_id:
        raise ConfigError("TWITCH_CLIENT_ID", "is required when EGRESS_TRANSPORT=helix")
    if twitch.reconnect_max_ms < twitch.reconnect_initial_ms:
        raise ConfigError(
            "IRC_RECONNECT_MAX_MS",
            f"must be >= IRC_RECONNECT_INITIAL_MS ({twitch.reconnect_initial_ms})",
        )
    if cluster.member_ttl_ms < 2 * cluster.heartbeat_ms:
        raise ConfigError(
            "CLUSTER_MEMBER_TTL_MS",
            f"must be at least twice CLUSTER_HEARTBEAT_MS ({cluster.heartbeat_ms}), "
            f"got {cluster.member_ttl_ms}",
        )
    if twitch.source == "eventsub":
        _check_eventsub(settings)
    elif (
        twitch.bot_username
        and not settings.credentials.oauth_token
        and not settings.google.uses_firestore
    ):
        raise ConfigError(
            "TWITCH_OAUTH_TOKEN",
            "is required with TWITCH_BOT_USERNAME (or tokens from Firestore: "
            "GOOGLE_CLOUD_PROJECT); leave TWITCH_BOT_USERNAME empty to read anonymously",
        )
    if cluster.enabled:
        _check_cluster(settings)


def _check_cluster(settings: Settings) -> None:
    """Cluster mode reads IRC anonymously: a bot account's JOIN budget and its
    100-channel cap are per account, which N members cannot share safely."""
    if settings.twitch.source != "irc":
        raise ConfigError(
            "CLUSTER_COORDINATION", "needs TWITCH_SOURCE=irc (EventSub is not clustered)"
        )
    if settings.twitch.bot_username and not settings.egress_enabled:
        raise ConfigError(
            "CLUSTER_COORDINATION",
            "reads anonymously: TWITCH_BOT_USERNAME is for sending only, and "
            "EGRESS_TRANSPORT is off (a bot account's JOIN rate and 100-channel cap are per "
            "account, see docs/scaling.md)",
        )
    if settings.cluster.coordination == "firestore" and not settings.google.uses_firestore:
        raise ConfigError("GOOGLE_CLOUD_PROJECT", "is required when CLUSTER_COORDINATION=firestore")


def _check_eventsub(settings: Settings) -> None:
    """EventSub reads chat as a user: no anonymous mode, and a token must be available."""
    twitch, credentials = settings.twitch, settings.credentials
    why = "is required when TWITCH_SOURCE=eventsub"
    if not twitch.bot_username:
        raise ConfigError("TWITCH_BOT_USERNAME", why)
    if twitch.read_as == "anonymous":
        raise ConfigError("TWITCH_READ_AS", "EventSub reads as the bot: anonymous needs irc")
    if not credentials.client_id:
        raise ConfigError("TWITCH_CLIENT_ID", why)
    if not (credentials.oauth_token or settings.google.uses_firestore):
        raise ConfigError(
            "TWITCH_OAUTH_TOKEN",
            "is required when TWITCH_SOURCE=eventsub (or tokens from Firestore: "
            "GOOGLE_CLOUD_PROJECT)",
        )
    if not twitch.oauth_url.endswith("/oauth2"):
        raise ConfigError("TWITCH_OAUTH_URL", "must end in /oauth2 when TWITCH_SOURCE=eventsub")
    # More channels than one socket holds: a conduit, which needs an app token.
    if len(twitch.channels) > EVENTSUB_MAX_CHANNELS and not credentials.client_secret:
        raise ConfigError(
            "TWITCH_CLIENT_SECRET",
            f"is required for more than {EVENTSUB_MAX_CHANNELS} channels on EventSub "
            "(a conduit, read with an app token; see docs/eventsub.md)",
        )
