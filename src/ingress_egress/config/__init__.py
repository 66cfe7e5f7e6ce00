"""Service configuration, read once from the environment, and only here.

``table.py`` declares every variable once (kind, bounds, default, secret or not, meaning);
``settings.py`` builds the typed, nested ``Settings`` from it and checks the rules that
span variables. A bad value stops start-up with one ``ConfigError`` line naming the
variable; secret values are never echoed.
"""

from ingress_egress.config.endpoints import IrcEndpoint, parse_irc_url
from ingress_egress.config.errors import ConfigError
from ingress_egress.config.kinds import parse_channels, read_channels_file
from ingress_egress.config.settings import (
    DLQ_TOPIC,
    EVENTSUB_MAX_CHANNELS,
    FINALIZER_TOPIC,
    INGRESS_TOPIC,
    BusSettings,
    ClusterSettings,
    CredentialsSettings,
    DeliverySettings,
    GoogleSettings,
    HttpSettings,
    IrcScaleSettings,
    RuntimeSettings,
    Settings,
    SpoolSettings,
    TelemetrySettings,
    TwitchSettings,
    channel_list,
    pure_python,
    read_variable,
)
from ingress_egress.config.table import SECRET_VARIABLES, VARIABLES, Variable

__all__ = [
    "DLQ_TOPIC",
    "EVENTSUB_MAX_CHANNELS",
    "FINALIZER_TOPIC",
    "INGRESS_TOPIC",
    "SECRET_VARIABLES",
    "VARIABLES",
    "BusSettings",
    "ClusterSettings",
    "ConfigError",
    "CredentialsSettings",
    "DeliverySettings",
    "GoogleSettings",
    "HttpSettings",
    "IrcEndpoint",
    "IrcScaleSettings",
    "RuntimeSettings",
    "Settings",
    "SpoolSettings",
    "TelemetrySettings",
    "TwitchSettings",
    "Variable",
    "channel_list",
    "parse_channels",
    "parse_irc_url",
    "pure_python",
    "read_channels_file",
    "read_variable",
]
