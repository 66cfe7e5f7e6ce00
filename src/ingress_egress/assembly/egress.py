"""Building the egress side from settings (part of the composition root, kept apart so
``service.py`` stays about lifecycle): which bus the commands come from, where results
and the at-most-once ledger go, which transport sends, and which lease says when.

    commands (NATS JetStream consumer | Pub/Sub subscription)
      -> EgressSender (limiter, channel states, ledger)
      -> transport (IRC as the bot | Helix Send Chat Message)
      -> results (finalizer destination), dead letters (internal.egress.dlq.v1)

Nothing here runs anything: ``build_egress`` returns an ``EgressRunner`` (or None when this
instance does not send) whose ``run`` the service starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ingress_egress.bus.egress_protocol import CommandSource, ResultPublisher
from ingress_egress.config import Settings
from ingress_egress.credentials import CredentialsProvider
from ingress_egress.credentials.twitch_oauth import TwitchOAuthClient
from ingress_egress.egress.channel_state import ChannelStates
from ingress_egress.egress.echo import EchoWatch
from ingress_egress.egress.lease import SendLease, SoloLease
from ingress_egress.egress.ledger import Ledger
from ingress_egress.egress.limits import SendLimiter
from ingress_egress.egress.runner import EgressRunner
from ingress_egress.egress.sender import EgressSender, SenderSettings
from ingress_egress.egress.transport import ChatTransport
from ingress_egress.status import ErrorLog

log = logging.getLogger("ingress_egress.egress")

HELIX_SEND_SCOPE = "user:write:chat"
COMMAND_BUSES = ("nats", "pubsub")  # where commands can be consumed from


def sends(settings: Settings) -> bool:
    """Whether this instance runs egress: a bot, a transport not off, a bus with commands."""
    return settings.egress_enabled and settings.bus.driver in COMMAND_BUSES


def choose_transport(setting: str, scopes: Iterable[str], client_id: str) -> str:
    """``EGRESS_TRANSPORT`` resolved: ``auto`` is Helix (Twitch's recommended way) when the
    token may send through it and there is a client id to send with, else IRC."""
    if setting != "auto":
        return setting
    return "helix" if client_id and HELIX_SEND_SCOPE in scopes else "irc"


@dataclass(frozen=True)
class BotIdentity:
    login: str
    user_id: str
    scopes: tuple[str, ...]


def build_egress(
    settings: Settings,
    credentials: CredentialsProvider | None,
    errors: ErrorLog,
    *,
    reading: Callable[[], Iterable[str]],
    on_bot_user_id: Callable[[str], None],
) -> EgressRunner | None:
    """The egress runner, or None when this instance does not send. ``reading``: the
    channels read now (echo confirmation); ``on_bot_user_id``: tells the read side who the
    bot is (``payload.isSelf``)."""
    if not sends(settings) or credentials is None:
        return None
    parts = EgressParts(settings, credentials, on_bot_user_id)
    return EgressRunner(
        send_lease(settings, errors),
        parts.sender,
        echo=EchoWatch(timeout_ms=settings.egress.echo_timeout_ms),
        reading=reading,
        report_error=errors.add,
    )


def send_lease(settings: Settings, errors: ErrorLog) -> SendLease:
    """One instance holds the lease always; a cluster member holds it in turn, through the
    coordination store the cluster already uses (docs/egress.md, "Cluster mode")."""
    cluster = settings.cluster
    if not cluster.enabled:
        return SoloLease(cluster.instance_id)
    from ingress_egress.cluster.lease_keeper import LeaseKeeper, LeaseTiming

    ttl_s = cluster.member_ttl_ms / 1000
    store: Any
    if cluster.coordination == "nats":
        from ingress_egress.cluster.lease_nats import NatsLeaseStore

        store = NatsLeaseStore(settings.bus.nats_url, cluster.name, ttl_s)
    else:
        from google.cloud.firestore import AsyncClient

        from ingress_egress.cluster.lease_firestore import FirestoreLeaseStore

        client: Any = AsyncClient(project=settings.google.project or None)
        store = FirestoreLeaseStore(client, cluster.name, ttl_s)
    timing = LeaseTiming(ttl_s=ttl_s, heartbeat_s=cluster.heartbeat_ms / 1000)
    return LeaseKeeper(store, cluster.instance_id, timing, report_error=errors.add)


class EgressParts:
    """Builds a sender for each term of the lease (a new term may follow a token change)."""

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialsProvider,
        on_bot_user_id: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.login = settings.twitch.bot_username
        self._on_bot_user_id = on_bot_user_id

    async def token(self) -> str:
        return (await self.credentials.get_chat_auth(self.login)).access_token

    async def refresh_token(self) -> str:
        return (await self.credentials.force_refresh(self.login)).access_token

    async def identity(self) -> BotIdentity:
        """Who the token is for and what it may do (``GET /validate``)."""
        client = TwitchOAuthClient(
            self.settings.twitch.oauth_url,
            self.settings.credentials.client_id,
            self.settings.credentials.client_secret,
            timeout=self.settings.credentials.oauth_timeout_s,
        )
        try:
            info = await client.validate(await self.token())
        finally:
            await client.aclose()
        return BotIdentity(info.login or self.login, info.user_id, info.scopes)

    async def sender(self, runner: EgressRunner, fence: int) -> EgressSender:
        settings, egress = self.settings, self.settings.egress
        bot = await self.identity()
        if bot.user_id:
            self._on_bot_user_id(bot.user_id)
        channels = ChannelStates(self.login)
        name = choose_transport(egress.transport, bot.scopes, settings.credentials.client_id)
        log.info("egress: sending as %s over %s", self.login, name)
        return EgressSender(
            command_source(settings),
            result_publisher(settings),
            self.transport(name, channels),
            ledger(settings),
            channels,
            SendLimiter(
                rate_limit=egress.rate_limit, privileged_rate_limit=egress.rate_limit_privileged
            ),
            SenderSettings(
                bus_prefix=settings.bus.prefix,
                identity=self.login,
                holder=settings.cluster.instance_id,
                fence=fence,
                max_age_s=egress.max_age_ms / 1000,
                long_text=egress.long_text,  # type: ignore[arg-type]
                repeat=egress.repeat,  # type: ignore[arg-type]
            ),
            stats=runner.stats,
            may_send=runner.lease.may_send,
            on_sent=runner.watch_echo if runner.echo is not None else None,
        )

    def transport(self, name: str, channels: ChannelStates) -> ChatTransport:
        twitch = self.settings.twitch
        if name == "helix":
            from ingress_egress.egress.helix_transport import HelixChatTransport

            return HelixChatTransport(
                twitch.helix_url,
                twitch.oauth_url,
                self.settings.credentials.client_id,
                self.token,
                channels,
                refresh_token=self.refresh_token,
            )
        from ingress_egress.egress.irc_transport import IrcChatTransport
        from ingress_egress.sources.irc.transport import open_transport

        return IrcChatTransport(twitch.irc_url, self.login, self.token, channels, open_transport)


def command_source(settings: Settings) -> CommandSource:
    bus, egress = settings.bus, settings.egress
    if bus.driver == "nats":
        from ingress_egress.bus.egress_nats import NatsCommandSource

        return NatsCommandSource(
            bus.nats_url, prefix=bus.prefix, stream=egress.nats_stream, consumer=egress.consumer
        )
    from ingress_egress.bus.egress_pubsub import PubSubCommandSource

    return PubSubCommandSource(
        settings.google.project,
        prefix=bus.prefix,
        subscription=egress.subscription,
        create=bus.pubsub_create_topic,
    )


def result_publisher(settings: Settings) -> ResultPublisher:
    bus = settings.bus
    if bus.driver == "nats":
        from ingress_egress.bus.egress_nats_results import NatsResultPublisher

        return NatsResultPublisher(bus.nats_url, prefix=bus.prefix)
    from ingress_egress.bus.egress_pubsub_results import PubSubResultPublisher

    return PubSubResultPublisher(settings.google.project, prefix=bus.prefix)


def ledger(settings: Settings) -> Ledger:
    """At-most-once records where a replacement instance finds them: JetStream KV with the
    NATS bus, Firestore with Pub/Sub. One ledger per deployment and bot: a new holder's
    limiter inherits the recent sends it finds there, which are another bot's business."""
    name = f"{settings.cluster.name}-{settings.twitch.bot_username}"
    if settings.bus.driver == "nats":
        from ingress_egress.egress.ledger_nats import NatsLedger, bucket_name

        return NatsLedger(settings.bus.nats_url, bucket_name(name))
    from google.cloud.firestore import AsyncClient

    from ingress_egress.egress.ledger_firestore import FirestoreLedger

    client: Any = AsyncClient(project=settings.google.project or None)
    return FirestoreLedger(client, name)
