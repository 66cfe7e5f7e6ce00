"""The composition root: every component is built and wired here, and nowhere else.

source (ChatPool of IRC connections, or EventSubSource) -> envelope (EnvelopeBuilder)
-> pipeline (Pipeline, spooled) -> bus (Publisher)
with the HTTP surface reading their state through ``Service`` (a ``ServiceView``).
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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ingress_egress.bus.base import BusError, Publisher
from ingress_egress.bus.factory import build_publisher
from ingress_egress.cluster import ClusterConfig, ClusterCoordinator, StoreUnavailable
from ingress_egress.config import ConfigError, Settings, channel_list
from ingress_egress.credentials import CredentialsError, CredentialsProvider
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.outbound import MessageEncoder
from ingress_egress.http import AdminUnavailable, EmbeddedServer, build_app
from ingress_egress.observability.prometheus import build_registry
from ingress_egress.observability.state import ChatState, Counters, ErrorLog
from ingress_egress.observability.telemetry import Telemetry
from ingress_egress.pipeline import Pipeline
from ingress_egress.pipeline.dead_letters import DeadLetters
from ingress_egress.retry import Backoff
from ingress_egress.sources.irc.channels_doc import FirestoreChannelList
from ingress_egress.sources.irc.codec import IrcCodec, make_codec
from ingress_egress.sources.irc.pool import ChannelChange, ChatPool, PoolLimits
from ingress_egress.sources.irc.transport import open_transport
from ingress_egress.spool import Spool

if TYPE_CHECKING:  # imported when chosen: TwitchIO costs start-up time on the IRC path
    from ingress_egress.sources.eventsub import EventSubSource

log = logging.getLogger("ingress_egress.service")

HEARTBEAT_S = 0.5
LAG_WINDOW_S = 60.0  # a stall stays visible in the lag figure this long (no scrape runs in one)
SHUTDOWN_GRACE_S = 8.0  # Cloud Run allows 10 s after SIGTERM
PUBLISHER_CLOSE_S = 4.0
SPOOLED_SHUTDOWN_GRACE_S = 3.0  # with a spool: for in-flight acks; the rest stays spooled
CLUSTER_LEAVE_S = 5.0  # hand channels over first (4 s inside, bounded here too)
SHUTDOWN_BUDGET_S = 9.5  # all of it, within Cloud Run's 10 s


def hot_path(codec: IrcCodec | None) -> str:
    """Which implementation parses and builds envelopes: a deployment silently running the
    pure-Python reference (about 9x slower per chat line: 22 us against 2.6 us in
    ``bench/bench_lines.py``, 2026-12-06) must be visible. ``codec``: the IRC source's
    (None for the EventSub source, whose events are converted in Python)."""
    if codec is not None and codec.name == "native":
        return "C (native codec)"
    return "pure Python"


def build_spool(settings: Settings) -> Spool | None:
    if not settings.spool_dir:
        return None
    return Spool(
        settings.spool_dir,
        settings.spool_max_bytes,
        settings.spool_fsync_ms / 1000,
        destination=spool_destination(settings),
    )


def spool_destination(settings: Settings) -> dict[str, str]:
    """Where spooled envelopes were accepted for: a spool is replayed only into the same."""
    destination = {"driver": settings.message_bus_driver, "subject": settings.ingress_subject}
    if settings.message_bus_driver == "nats":
        destination["stream"] = settings.nats_stream
    elif settings.message_bus_driver == "pubsub":
        destination["project"] = settings.google_cloud_project
    return destination


def build_credentials(settings: Settings) -> CredentialsProvider | None:
    if not settings.twitch_bot_username:
        return None  # anonymous, read-only
    from ingress_egress.credentials import build_credentials_provider

    return build_credentials_provider(settings)


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
        self.state = ChatState(
            transport=settings.twitch_source,
            identity=settings.identity,
            wanted=settings.twitch_channels,
        )
        builder = EnvelopeBuilder(transport=settings.twitch_source)
        self.pipeline = Pipeline(
            self.publisher,
            self.counters,
            self.errors,
            max_retries=settings.publish_max_retries,
            max_in_flight=settings.publish_max_in_flight,
            queue_max=settings.queue_max_messages,
            spool=build_spool(settings),
            dead_letters=DeadLetters(
                self.publisher,
                self.counters,
                self.errors,
                destination=settings.ingress_subject,
                dlq_subject=settings.dlq_subject,
                finalizer_subject=settings.finalizer_subject,
                max_retries=settings.publish_max_retries,
            ),
        )
        self.client: ChatPool | EventSubSource
        self.codec: IrcCodec | None = None  # the IRC source's, chosen once here
        self.eventsub: EventSubSource | None = None
        self.channels_doc: FirestoreChannelList | None = None
        self.cluster: ClusterCoordinator | None = None
        clustered = settings.cluster_coordination != "none"
        if settings.twitch_source == "eventsub":
            encoder = MessageEncoder(builder, self.pipeline.accept)
            self.client = self.eventsub = self._eventsub_source(encoder, eventsub_keepalive_s)
        else:
            self.codec = codec = make_codec(builder)
            self.client = ChatPool(
                endpoint=settings.twitch_irc_url,
                # In a cluster the coordinator hands this member its channels.
                channels=() if clustered else settings.twitch_channels,
                login=settings.twitch_bot_username,
                credentials=self.credentials,
                codec=codec,
                # TCP/TLS reads are split into lines by the codec's splitter (C or Python).
                transport_factory=functools.partial(open_transport, split_lines=codec.split_lines),
                sink=self.pipeline,
                state=self.state,
                counters=self.counters,
                errors=self.errors,
                limits=pool_limits(settings, keepalive_idle_s, pong_timeout_s),
            )
            if clustered:
                self.cluster = build_cluster(settings, self.client, self.state, self.errors)
            self.channels_doc = build_channels_doc(settings, self._replace_channels, self.errors)
        self.telemetry = telemetry or Telemetry.from_settings(
            settings.otel_traces_exporter, settings.otel_metrics_exporter
        )
        self.pipeline.observer = self.telemetry.bind(self)
        self.metrics = build_registry(self)
        app = build_app(
            self,
            metrics=self.metrics,
            debug_token=settings.debug_token,
            admin=self if self.eventsub is None else None,  # dynamic channels: IRC only
            admin_token=settings.admin_token,
        )
        self.http = EmbeddedServer(app, settings.host, settings.port)
        self.bus_error = "connecting"
        self._started_at = time.monotonic()
        self._beat = time.monotonic()
        self._worst_lag = (0.0, self._beat)  # (seconds late, when) for recent_loop_lag_s
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopped = asyncio.Event()

    def _eventsub_source(self, sink: MessageEncoder, keepalive_s: float) -> EventSubSource:
        from ingress_egress.sources.eventsub import EventSubSource

        settings = self.settings
        if self.credentials is None:  # config.py refuses this; a test may pass None
            raise CredentialsError("no_credentials", "EventSub needs the bot's token")
        return EventSubSource(
            channels=settings.twitch_channels,
            login=settings.twitch_bot_username,
            client_id=settings.twitch_client_id,
            credentials=self.credentials,
            sink=sink,
            state=self.state,
            counters=self.counters,
            errors=self.errors,
            backoff=Backoff(
                settings.irc_reconnect_initial_ms / 1000, settings.irc_reconnect_max_ms / 1000
            ),
            ws_url=settings.twitch_eventsub_ws_url,
            helix_url=settings.twitch_helix_url,
            oauth_url=settings.twitch_oauth_url,
            keepalive_s=keepalive_s,
            client_secret=settings.twitch_client_secret,  # conduits (> 50 channels) only
        )

    @property
    def twitch_endpoint(self) -> str:
        if self.settings.twitch_source == "eventsub":
            return self.settings.twitch_eventsub_ws_url
        return str(self.settings.twitch_irc_url)

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """HTTP first (so probes answer), then the bus, then Twitch: never read what
        cannot be published."""
        await self.http.start()
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
        self._tasks.append(asyncio.create_task(self._start_bus_then_chat(), name="startup"))
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # GC's scans (the hot path's garbage is freed by reference counting anyway).
        gc.freeze()
        log.info(
            "ingress-egress up: http :%d, bus %s -> %s, twitch %s as %s, channels %s, hot path %s",
            self.http.port,
            self.publisher.name,
            self.settings.ingress_subject,
            self.twitch_endpoint,
            self.settings.identity,
            ",".join(self.settings.twitch_channels) or "(none)",
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
        await self._connect_bus()
        if not spooled:
            await self.pipeline.prepare()
        self.pipeline.start()
        if not spooled:
            await self._start_chat()

    async def _connect_bus(self) -> None:
        backoff = Backoff(0.5, 15.0)
        while True:
            try:
                await self.publisher.start()
                self.bus_error = ""
                break
            except Exception as error:  # a driver bug must not kill start-up silently
                if not isinstance(error, BusError):
                    log.exception("bus start failed unexpectedly")
                self.bus_error = str(error) or type(error).__name__
                self.errors.add("bus_unavailable", str(error))
                delay = backoff.next_delay()
                log.error("bus not available (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)

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
        self._tasks.append(asyncio.create_task(self.client.run(), name="twitch-irc"))
        if self.cluster is not None:
            self._tasks.append(asyncio.create_task(self.cluster.run(), name="cluster"))
        if self.channels_doc is not None:
            self._tasks.append(asyncio.create_task(self.channels_doc.run(), name="channels-doc"))

    async def stop(self) -> None:
        """Stop reading, flush what is in flight (bounded), then close everything."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        started = time.monotonic()
        if self.cluster is not None:  # the others take our channels while we still read
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.cluster.leave(), CLUSTER_LEAVE_S)
        await self.client.stop()
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

    async def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            now = time.monotonic()
            self._note_lag(now - self._beat - HEARTBEAT_S, now)
            self._beat = now

    def _note_lag(self, lag: float, now: float) -> None:
        worst, at = self._worst_lag
        if lag >= worst or now - at > LAG_WINDOW_S:
            self._worst_lag = (max(lag, 0.0), now)

    # -- ServiceView / MetricsSource ----------------------------------------------------

    @property
    def destination(self) -> str:
        return self.settings.ingress_subject

    def connections(self) -> list[dict[str, Any]]:
        """Per-connection detail for ``/_debug/twitch``: one entry per pool connection."""
        return self.client.connections(_iso_from_monotonic)

    # -- channels at runtime (admin route, SIGHUP) ----------------------------------------

    def channel_listing(self) -> dict[str, Any]:
        state = self.state
        listing = {
            "wanted": list(state.wanted),
            "joined": sorted(state.joined),
            "pending": state.pending,
            "failed": dict(state.failed_channels),
        }
        if self.cluster is not None:  # the cluster's list; this member reads its share
            listing["wanted"] = list(self.cluster.wanted)
            listing["reading"] = list(state.wanted)
        return listing

    async def change_channels(self, add: list[str], remove: list[str]) -> ChannelChange:
        if self.cluster is not None:
            try:
                wanted = await self.cluster.change_wanted(add, remove)
            except StoreUnavailable as error:
                raise AdminUnavailable(f"cluster store unreachable: {error}") from None
            change = ChannelChange(wanted.added, wanted.removed, wanted.wanted)
        else:
            change = self.irc_pool().change(add=add, remove=remove)
        if change.added or change.removed:
            log.info(
                "channels changed: +%s -%s",
                ",".join(change.added) or "-",
                ",".join(change.removed) or "-",
            )
        return change

    def reload_channels(self) -> None:
        """SIGHUP: re-read the channel list (``TWITCH_CHANNELS_FILE`` or the environment)."""
        try:
            channels = channel_list(os.environ)
        except ConfigError as error:
            self.errors.add("reload_failed", str(error))
            log.error("channel reload failed, keeping the current list: %s", error)
            return
        if self.eventsub is not None:
            log.warning("SIGHUP ignored: channels change at runtime on the IRC source only")
            return
        if self.cluster is not None:
            self.cluster.request_replace(channels)
            log.info("channel list reloaded: %d wanted, for the whole cluster", len(channels))
            return
        change = self.irc_pool().replace(channels)
        log.info(
            "channel list reloaded: %d wanted, +%d -%d",
            len(change.wanted),
            len(change.added),
            len(change.removed),
        )

    def _replace_channels(self, channels: tuple[str, ...]) -> None:
        """The channel document's list: the cluster's in cluster mode, else this pool's."""
        if self.cluster is not None:
            self.cluster.request_replace(channels)
        else:
            self.irc_pool().replace(channels)

    def irc_pool(self) -> ChatPool:
        assert isinstance(self.client, ChatPool), "dynamic channels are IRC-only"
        return self.client

    def loop_lag_s(self) -> float:
        return max(0.0, time.monotonic() - self._beat - HEARTBEAT_S)

    def recent_loop_lag_s(self) -> float:
        """The worst heartbeat lateness of about the last minute, or the current lag."""
        worst, at = self._worst_lag
        if time.monotonic() - at > LAG_WINDOW_S:
            worst = 0.0
        return max(worst, self.loop_lag_s())

    def readiness(self) -> list[str]:
        reasons = []
        if not self.publisher.connected:
            reasons.append(f"bus not connected ({self.bus_error or 'disconnected'})")
        spool = self.pipeline.spool
        if spool is not None and not spool.healthy:
            reasons.append(
                f"spool degraded ({spool.last_error}): unacknowledged envelopes are held in "
                "memory only, a restart would lose them"
            )
        if self.credentials is not None and not self.credentials.healthy:
            status = self.credentials.status()
            reasons.append(f"credentials {status.get('state')}: {status.get('reason')}")
        if self.eventsub is not None:
            reasons.extend(self.eventsub.degraded_reasons())
        if self.cluster is not None:
            reasons.extend(self.cluster.readiness())
        if not self.state.connected:
            reasons.append("not connected to Twitch")
        pending = self.state.pending
        if pending:
            reasons.append(f"channels not joined yet: {', '.join(pending[:20])}")
        if self.state.failed_channels:
            failed = ", ".join(f"{c} ({why})" for c, why in self.state.failed_channels.items())
            reasons.append(f"channels failed: {failed}")
        return reasons

    def debug_snapshot(self) -> dict[str, Any]:
        state = self.state
        snapshot = {
            "connected": state.connected,
            "wantedChannels": list(state.wanted),
            "joinedChannels": sorted(state.joined),
            "pendingChannels": state.pending,
            "failedChannels": dict(state.failed_channels),
            "lastReconnectAt": state.last_reconnect_at,
            "reconnects": state.reconnects,
            "counters": self.counters.as_dict(),
            "lastError": self.errors.last,
            "recentErrors": list(self.errors.entries),
            "transport": state.transport,
            "identity": state.identity,
            "endpoint": self.twitch_endpoint,
            "bus": self.publisher.describe(),
            "queue": self.pipeline.describe(),  # depth, inFlight, spool, deadLetters
            "publishLatencyMs": self.pipeline.latency.summary_ms(),
            "credentials": self.credentials.status() if self.credentials else None,
            "uptimeSeconds": round(time.monotonic() - self._started_at, 1),
            "hotPath": hot_path(self.codec),
            "connections": self.connections(),
            "http": self.http.stats(),  # open connections, cap, refused, timed out
        }
        if self.cluster is not None:
            snapshot["cluster"] = self.cluster.describe()
        if self.eventsub is not None:
            snapshot["eventsub"] = self.eventsub.describe()
        else:
            snapshot["pool"] = self.client.describe()
        return snapshot


def build_cluster(
    settings: Settings, pool: ChatPool, state: ChatState, errors: ErrorLog
) -> ClusterCoordinator:
    """The cluster member (``CLUSTER_COORDINATION``): its store and its coordinator."""
    ttl_s = settings.cluster_member_ttl_ms / 1000
    name = settings.cluster_name
    store: Any
    if settings.cluster_coordination == "nats":
        from ingress_egress.cluster.nats_store import NatsKvStore

        store = NatsKvStore(settings.nats_url, name, ttl_s)
    else:
        from ingress_egress.cluster.firestore_store import FirestoreStore

        store = FirestoreStore(firestore_client(settings, "CLUSTER_COORDINATION"), name, ttl_s)
    config = ClusterConfig(
        instance_id=settings.instance_id or f"ie-{os.urandom(5).hex()}",
        coordination=settings.cluster_coordination,
        cluster_name=name,
        replicas=settings.cluster_replicas,
        heartbeat_s=settings.cluster_heartbeat_ms / 1000,
        ttl_s=ttl_s,
        handover_max_s=settings.cluster_handover_max_ms / 1000,
    )
    return ClusterCoordinator(store, pool, state, config, errors, seed=settings.twitch_channels)


def firestore_client(settings: Settings, variable: str) -> Any:
    """A Firestore ``AsyncClient``; without Google credentials or a project, a one-line
    ``ConfigError`` naming the variable that asked for Firestore."""
    from google.cloud.firestore import AsyncClient

    try:
        return AsyncClient(project=settings.google_cloud_project or None)
    except Exception as error:
        problem = str(error).splitlines()[0][:80] if str(error) else ""
        raise ConfigError(
            variable,
            f"cannot open Firestore ({type(error).__name__}: {problem}); set "
            "GOOGLE_CLOUD_PROJECT and Google credentials, or FIRESTORE_EMULATOR_HOST",
        ) from None


def build_channels_doc(
    settings: Settings, apply: Callable[[tuple[str, ...]], object], errors: ErrorLog
) -> FirestoreChannelList | None:
    """The Firestore-polled channel list, when ``TWITCH_CHANNELS_FIRESTORE_DOC`` is set."""
    if not settings.twitch_channels_firestore_doc:
        return None
    return FirestoreChannelList(
        firestore_client(settings, "TWITCH_CHANNELS_FIRESTORE_DOC"),
        settings.twitch_channels_firestore_doc,
        apply,
        errors,
        poll_interval_s=settings.twitch_channels_firestore_poll_ms / 1000,
    )


def pool_limits(settings: Settings, keepalive_idle_s: float, pong_timeout_s: float) -> PoolLimits:
    return PoolLimits(
        channels_per_connection=settings.irc_channels_per_connection,
        connect_interval_s=settings.irc_connect_interval_ms / 1000,
        join_limit=settings.twitch_join_rate_limit,
        join_window_s=settings.twitch_join_rate_window_ms / 1000,
        join_timeout_s=settings.irc_join_timeout_ms / 1000,
        failed_retry_s=settings.irc_failed_channel_retry_ms / 1000,
        keepalive_idle_s=keepalive_idle_s,
        pong_timeout_s=pong_timeout_s,
        reconnect_initial_s=settings.irc_reconnect_initial_ms / 1000,
        reconnect_max_s=settings.irc_reconnect_max_ms / 1000,
    )


def _iso_from_monotonic(moment: float) -> str:
    epoch = time.time() - (time.monotonic() - moment)
    whole = int(epoch)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((epoch - whole) * 1000):03d}Z"
