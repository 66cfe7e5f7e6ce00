"""The composition root: every component is built and wired here, started and stopped.

source (a ``ChatSource``: the IRC ``ChatPool`` or ``EventSubSource``) -> envelope
(EnvelopeBuilder) -> pipeline (Pipeline, spooled) -> bus (Publisher); the runtime parts
(``runtime/``: readiness, the debug document, the loop heartbeat, channel control) and the
adapters (HTTP, metrics, telemetry) are handed the built parts they read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ingress_egress.assembly.egress import build_egress
from ingress_egress.bus.base import Publisher
from ingress_egress.bus.factory import build_publisher
from ingress_egress.cluster import ClusterConfig, ClusterCoordinator
from ingress_egress.config import ConfigError, Settings
from ingress_egress.credentials import CredentialsError, CredentialsProvider
from ingress_egress.egress.runner import EgressRunner
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.outbound import MessageEncoder
from ingress_egress.http import EmbeddedServer, build_app
from ingress_egress.observability.metrics import EgressMetrics, MetricsSource
from ingress_egress.observability.prometheus import build_registry
from ingress_egress.observability.telemetry import Telemetry
from ingress_egress.pipeline import Pipeline
from ingress_egress.pipeline.dead_letters import DeadLetters
from ingress_egress.retry import Backoff
from ingress_egress.runtime.bus import BusConnection
from ingress_egress.runtime.channels import ChannelControl, channel_control, reload_channels
from ingress_egress.runtime.debug import DebugSnapshot, hot_path
from ingress_egress.runtime.heartbeat import LoopHeartbeat
from ingress_egress.runtime.readiness import Readiness
from ingress_egress.runtime.view import StatusView
from ingress_egress.sources.base import ChannelReader, ChatSource, SelfMessageHook
from ingress_egress.sources.irc.channels_doc import FirestoreChannelList
from ingress_egress.sources.irc.codec import IrcCodec, make_codec
from ingress_egress.sources.irc.pool import ChatPool, PoolLimits
from ingress_egress.sources.irc.transport import open_transport
from ingress_egress.spool import Spool
from ingress_egress.status import ChatState, Counters, ErrorLog

if TYPE_CHECKING:  # imported when chosen: TwitchIO costs start-up time on the IRC path
    from ingress_egress.sources.eventsub import EventSubSource

log = logging.getLogger("ingress_egress.service")

SHUTDOWN_GRACE_S = 8.0  # Cloud Run allows 10 s after SIGTERM
PUBLISHER_CLOSE_S = 4.0
SPOOLED_SHUTDOWN_GRACE_S = 3.0  # with a spool: for in-flight acks; the rest stays spooled
EGRESS_STOP_S = 3.0  # stop sending, give the send lease up (what is unsettled is redelivered)
CLUSTER_LEAVE_S = 5.0  # hand channels over first (4 s inside, bounded here too)
SHUTDOWN_BUDGET_S = 9.5  # all of it, within Cloud Run's 10 s


class Service:
    def __init__(
        self,
        settings: Settings,
        *,
        publisher: Publisher | None = None,
        credentials: CredentialsProvider | None = None,
        keepalive_idle_s: float = 30.0,
        pong_timeout_s: float = 10.0,
        telemetry: Telemetry | None = None,
        eventsub_keepalive_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.counters = Counters()
        self.errors = ErrorLog()
        self.publisher = publisher or build_publisher(settings)
        self.credentials = credentials if credentials is not None else build_credentials(settings)
        self.state = ChatState(transport=settings.twitch.source, identity=settings.reader_identity)
        self.pipeline = build_pipeline(settings, self.publisher, self.counters, self.errors)
        self.builder = builder = EnvelopeBuilder(transport=settings.twitch.source)
        self.codec: IrcCodec | None = None  # the IRC source's, chosen once here
        # Sending as the bot (None: this instance only reads); the read side reports the
        # bot's own messages to its echo watch and marks them isSelf.
        self.egress = build_egress(
            settings,
            self.credentials,
            self.errors,
            reading=lambda: self.state.joined,
            on_bot_user_id=self._bot_user_id,
        )
        self.source: ChatSource
        reader: ChannelReader | None = None
        if settings.twitch.source == "eventsub":
            self.source = self._eventsub_source(builder, eventsub_keepalive_s)
        else:
            self.codec = make_codec(builder, pure=settings.runtime.pure_python)
            pool = self._irc_pool(self.codec, keepalive_idle_s, pong_timeout_s)
            self.source, reader = pool, pool.channel_control()
        self.cluster = build_cluster(settings, reader, self.state, self.errors)
        self.channels = channel_control(reader, self.cluster, self.state)
        self.channels_doc = build_channels_doc(settings, self.channels, self.errors)
        self.bus = BusConnection(self.publisher, self.errors)
        self.heartbeat = LoopHeartbeat()
        self.readiness = Readiness(
            self.bus, self.pipeline, self.credentials, self.cluster, self.source, self.egress
        )
        self.view = StatusView(self.readiness, self._debug_snapshot(), self.heartbeat)
        self.telemetry = telemetry or Telemetry.from_settings(
            settings.telemetry.traces_exporter, settings.telemetry.metrics_exporter
        )
        metrics_source = self._metrics_source()
        self.pipeline.observer = self.telemetry.bind(metrics_source)
        self.metrics = build_registry(metrics_source)
        http = settings.http
        app = build_app(
            self.view,
            metrics=self.metrics,
            debug_token=http.debug_token,
            admin=self.channels,
            admin_token=http.admin_token,
        )
        self.http = self.view.server = EmbeddedServer(app, http.host, http.port)
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()

    def _irc_pool(self, codec: IrcCodec, keepalive_s: float, pong_timeout_s: float) -> ChatPool:
        settings = self.settings
        return ChatPool(
            endpoint=settings.twitch.irc_url,
            # In a cluster the coordinator hands this member its channels.
            channels=() if settings.cluster.enabled else settings.twitch.channels,
            login=settings.reader_login,
            credentials=self.credentials if settings.reader_login else None,
            codec=codec,
            # TCP/TLS reads are split into lines by the codec's splitter (C or Python).
            transport_factory=functools.partial(open_transport, split_lines=codec.split_lines),
            sink=self.pipeline,
            state=self.state,
            counters=self.counters,
            errors=self.errors,
            limits=pool_limits(settings, keepalive_s, pong_timeout_s),
            on_self_message=self._self_message_hook(),
        )

    def _eventsub_source(self, builder: EnvelopeBuilder, keepalive_s: float) -> EventSubSource:
        from ingress_egress.sources.eventsub import EventSubSource

        twitch, credentials = self.settings.twitch, self.settings.credentials
        if self.credentials is None:  # config refuses this; a test may pass None
            raise CredentialsError("no_credentials", "EventSub needs the bot's token")
        return EventSubSource(
            channels=twitch.channels,
            login=twitch.bot_username,
            client_id=credentials.client_id,
            credentials=self.credentials,
            sink=MessageEncoder(builder, self.pipeline.accept),
            state=self.state,
            counters=self.counters,
            errors=self.errors,
            backoff=Backoff(twitch.reconnect_initial_ms / 1000, twitch.reconnect_max_ms / 1000),
            ws_url=twitch.eventsub_ws_url,
            helix_url=twitch.helix_url,
            oauth_url=twitch.oauth_url,
            keepalive_s=keepalive_s,
            client_secret=credentials.client_secret,  # conduits (> 50 channels) only
            on_bot_user_id=self._bot_user_id,
            on_self_message=self._self_message_hook(),
        )

    def _debug_snapshot(self) -> DebugSnapshot:
        return DebugSnapshot(
            source=self.source,
            endpoint=self.settings.twitch.endpoint,
            codec=self.codec,
            counters=self.counters,
            errors=self.errors,
            publisher=self.publisher,
            pipeline=self.pipeline,
            credentials=self.credentials,
            cluster=self.cluster,
            egress=self.egress,
        )

    def _self_message_hook(self) -> SelfMessageHook | None:
        echo = self.egress.echo if self.egress is not None else None
        return echo.on_self_message if echo is not None else None

    def _bot_user_id(self, user_id: str) -> None:
        """The bot's Twitch user id, learned when egress validates its token: the read
        side marks the bot's own messages (``payload.isSelf``) from now on."""
        if self.codec is not None:
            self.codec.set_self_user_id(user_id)
        else:
            self.builder.set_self_user_id(user_id)

    def _metrics_source(self) -> MetricsSource:
        return MetricsSource(
            counters=self.counters,
            chat=self.state,
            pipeline=self.pipeline,
            publisher=self.publisher,
            credentials=self.credentials,
            cluster=self.cluster,
            destination=self.settings.bus.ingress_subject,
            readiness=self.readiness.reasons,
            recent_loop_lag_s=self.heartbeat.recent_loop_lag_s,
            connections=self.source.connections,
            egress=egress_metrics(self.egress),
        )

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """HTTP first (so probes answer), then the bus, then Twitch: never read what
        cannot be published."""
        await self.http.start()
        self._tasks.append(asyncio.create_task(self.heartbeat.run(), name="heartbeat"))
        self._tasks.append(asyncio.create_task(self._start_bus_then_chat(), name="startup"))
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # GC's scans (the hot path's garbage is freed by reference counting anyway).
        gc.freeze()
        settings = self.settings
        log.info(
            "ingress-egress up: http :%d, bus %s -> %s, twitch %s as %s, channels %s, hot path %s",
            self.http.port,
            self.publisher.name,
            settings.bus.ingress_subject,
            settings.twitch.endpoint,
            settings.reader_identity,
            ",".join(settings.twitch.channels) or "(none)",
            hot_path(self.codec),
        )

    async def _start_bus_then_chat(self) -> None:
        """With a spool, Twitch is read while the bus is still connecting: what is read
        waits in the spool. Without one, nothing is read that could not be published."""
        spooled = self.pipeline.spool is not None
        if spooled:
            await self.pipeline.prepare()  # opens the spool: a previous run's rest goes first
            spooled = self.pipeline.spool is not None  # it may have been unusable
        if spooled:
            self.pipeline.start_spool()
            await self._start_chat()
        await self.bus.connect()
        if not spooled:
            await self.pipeline.prepare()
        self.pipeline.start()
        if not spooled:
            await self._start_chat()

    async def _start_chat(self) -> None:
        if self.credentials is not None:
            try:
                await self.credentials.start()
            except CredentialsError as error:
                self.errors.add(error.code, str(error))
                log.error("credentials: %s", error)
        # Connecting the bus built long-lived objects (and imported modules): collect and
        # freeze them now, so no long full collection stalls the first minutes of chat.
        gc.collect()
        gc.freeze()
        self._tasks.append(asyncio.create_task(self.source.run(), name=self.source.name))
        if self.cluster is not None:
            self._tasks.append(asyncio.create_task(self.cluster.run(), name="cluster"))
        if self.channels_doc is not None:
            self._tasks.append(asyncio.create_task(self.channels_doc.run(), name="channels-doc"))
        if self.egress is not None:
            self._tasks.append(asyncio.create_task(self.egress.run(), name="egress"))

    async def stop(self) -> None:
        """Stop reading, flush what is in flight (bounded), then close everything."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        started = time.monotonic()
        if self.egress is not None:  # sending stops and the lease goes to a successor first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.egress.stop(), EGRESS_STOP_S)
        if self.cluster is not None:  # the others take our channels while we still read
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cluster.leave(), CLUSTER_LEAVE_S)
        await self.source.stop()
        spooled = self.pipeline.spool is not None
        if spooled:
            left = await self.pipeline.drain(SPOOLED_SHUTDOWN_GRACE_S, in_flight_only=True)
        else:
            grace = max(1.0, SHUTDOWN_GRACE_S - (time.monotonic() - started))
            left = await self.pipeline.drain(grace)
        if left and not spooled:
            log.error("shutdown: %d envelopes were not acknowledged in time", left)
            self.errors.add("shutdown_unflushed", f"{left} envelopes not acknowledged")
        await self.pipeline.stop()  # with a spool: fsynced there, sent first by the next start
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.cluster is not None:
            await self.cluster.close()
        # Bounded: Cloud Run's 10 s include this (and, in a cluster, the handover before it).
        close_s = min(PUBLISHER_CLOSE_S, max(0.5, SHUTDOWN_BUDGET_S - (time.monotonic() - started)))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.publisher.close(), close_s)
        if self.credentials is not None:
            with contextlib.suppress(Exception):
                await self.credentials.close()
        self.telemetry.shutdown()
        await self.http.stop()

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_channels)
        await self.start()
        await stop.wait()
        log.info("signal received: shutting down")
        await self.stop()

    def reload_channels(self) -> None:
        """SIGHUP: re-read the channel list (``TWITCH_CHANNELS_FILE`` or the environment)."""
        reload_channels(self.channels, self.errors, os.environ)


# -- builders -------------------------------------------------------------------------


def egress_metrics(egress: EgressRunner | None) -> EgressMetrics | None:
    """The egress figures' reads (None while this instance does not send)."""
    if egress is None:
        return None
    echo = egress.echo
    return EgressMetrics(
        stats=egress.stats,
        backlog=lambda: egress.backlog,
        unseen=(lambda: echo.unseen) if echo is not None else (lambda: 0),
        lease_held=egress.lease.may_send,
        destination_blocked=egress.destination_blocked,
    )


def build_pipeline(
    settings: Settings, publisher: Publisher, counters: Counters, errors: ErrorLog
) -> Pipeline:
    delivery, bus = settings.delivery, settings.bus
    return Pipeline(
        publisher,
        counters,
        errors,
        max_retries=delivery.max_retries,
        max_in_flight=delivery.max_in_flight,
        queue_max=delivery.queue_max_messages,
        spool=build_spool(settings),
        dead_letters=DeadLetters(
            publisher,
            counters,
            errors,
            destination=bus.ingress_subject,
            dlq_subject=bus.dlq_subject,
            finalizer_subject=bus.finalizer_subject,
            max_retries=delivery.max_retries,
        ),
    )


def build_spool(settings: Settings) -> Spool | None:
    spool = settings.spool
    if not spool.directory:
        return None
    return Spool(
        spool.directory,
        spool.max_bytes,
        spool.fsync_ms / 1000,
        destination=spool_destination(settings),
    )


def spool_destination(settings: Settings) -> dict[str, str]:
    """Where spooled envelopes were accepted for: a spool is replayed only into the same."""
    bus = settings.bus
    destination = {"driver": bus.driver, "subject": bus.ingress_subject}
    if bus.driver == "nats":
        destination["stream"] = bus.nats_stream
    elif bus.driver == "pubsub":
        destination["project"] = settings.google.project
    return destination


def build_credentials(settings: Settings) -> CredentialsProvider | None:
    if not settings.reader_login and not settings.egress_enabled:
        return None  # anonymous and read-only: no token needed
    from ingress_egress.credentials import build_credentials_provider

    return build_credentials_provider(settings)


def build_cluster(
    settings: Settings, reader: ChannelReader | None, state: ChatState, errors: ErrorLog
) -> ClusterCoordinator | None:
    """The cluster member (``CLUSTER_COORDINATION``): its store and its coordinator."""
    cluster = settings.cluster
    if not cluster.enabled or reader is None:  # config allows a cluster on IRC only
        return None
    ttl_s = cluster.member_ttl_ms / 1000
    store: Any
    if cluster.coordination == "nats":
        from ingress_egress.cluster.nats_store import NatsKvStore

        store = NatsKvStore(settings.bus.nats_url, cluster.name, ttl_s)
    else:
        from ingress_egress.cluster.firestore_store import FirestoreStore

        client = firestore_client(settings, "CLUSTER_COORDINATION")
        store = FirestoreStore(client, cluster.name, ttl_s)
    config = ClusterConfig(
        instance_id=cluster.instance_id,
        coordination=cluster.coordination,
        cluster_name=cluster.name,
        replicas=cluster.replicas,
        heartbeat_s=cluster.heartbeat_ms / 1000,
        ttl_s=ttl_s,
        handover_max_s=cluster.handover_max_ms / 1000,
    )
    return ClusterCoordinator(store, reader, state, config, errors, seed=settings.twitch.channels)


def firestore_client(settings: Settings, variable: str) -> Any:
    """A Firestore ``AsyncClient``; without Google credentials or a project, a one-line
    ``ConfigError`` naming the variable that asked for Firestore."""
    from google.cloud.firestore import AsyncClient

    try:
        return AsyncClient(project=settings.google.project or None)
    except Exception as error:
        problem = str(error).splitlines()[0][:80] if str(error) else ""
        raise ConfigError(
            variable,
            f"cannot open Firestore ({type(error).__name__}: {problem}); set "
            "GOOGLE_CLOUD_PROJECT and Google credentials, or FIRESTORE_EMULATOR_HOST",
        ) from None


def build_channels_doc(
    settings: Settings, control: ChannelControl | None, errors: ErrorLog
) -> FirestoreChannelList | None:
    """The Firestore-polled channel list, when ``TWITCH_CHANNELS_FIRESTORE_DOC`` is set."""
    twitch = settings.twitch
    if not twitch.channels_firestore_doc or control is None:
        return None
    return FirestoreChannelList(
        firestore_client(settings, "TWITCH_CHANNELS_FIRESTORE_DOC"),
        twitch.channels_firestore_doc,
        control.replace_channels,
        errors,
        poll_interval_s=twitch.channels_firestore_poll_ms / 1000,
    )


def pool_limits(settings: Settings, keepalive_idle_s: float, pong_timeout_s: float) -> PoolLimits:
    scale, twitch = settings.irc_scale, settings.twitch
    return PoolLimits(
        channels_per_connection=scale.channels_per_connection,
        connect_interval_s=scale.connect_interval_ms / 1000,
        join_limit=scale.join_rate_limit,
        join_window_s=scale.join_rate_window_ms / 1000,
        join_timeout_s=scale.join_timeout_ms / 1000,
        failed_retry_s=scale.failed_channel_retry_ms / 1000,
        keepalive_idle_s=keepalive_idle_s,
        pong_timeout_s=pong_timeout_s,
        reconnect_initial_s=twitch.reconnect_initial_ms / 1000,
        reconnect_max_s=twitch.reconnect_max_ms / 1000,
    )
