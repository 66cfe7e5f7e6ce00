"""Egress commands from NATS JetStream: a durable pull consumer with explicit acks.

The stream is found by subject: whatever stream the platform set up to capture
``${BUS_PREFIX}internal.egress.v1`` is used as it is. Only when none captures it is one
created (``stream``, default ``EGRESS``): work-queue retention (an acknowledged command is
deleted, so the stream holds exactly the backlog), the egress dead-letter subject too when
nothing captures that either, and a de-duplication window for publishers that set
``Nats-Msg-Id``.

The durable consumer (``consumer``, default ``ingress-egress``) survives restarts of this
process and of the server: what was delivered and not acknowledged comes back with a
higher delivery count. Choices (docs/egress.md):

* ``ack_wait`` 30 s: a command not settled by then is redelivered (a crashed holder's
  commands come back within 30 s); the egress core extends it with ``in_progress`` while a
  command waits for its turn under Twitch's limits.
* ``max_deliver`` unlimited: a command waits while its result has nowhere to go (the
  finalizer's stream missing), and JetStream would drop it silently after the last
  delivery; the egress core dead-letters what it cannot read, itself.
* Small fetches (the caller's ``max_commands``): commands are held only when the core has
  room for them, so ack_wait is not spent in a local queue.

Its own connection, with the ingress driver's reconnect settings: nats-py reconnects for
ever; while it does, ``receive`` counts the outage, reports it and backs off. A consumer or
stream that disappeared (a server that lost its store) is set up again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_protocol import (
    COMMAND_TOPIC,
    DLQ_TOPIC,
    CommandSource,
    ReceivedCommand,
    SourceStats,
)
from ingress_egress.retry import Backoff

log = logging.getLogger("ingress_egress.bus.egress_nats")

DEFAULT_STREAM = "EGRESS"
DEFAULT_CONSUMER = "ingress-egress"
ACK_WAIT_S = 30.0
MAX_DELIVER = -1  # unlimited: see the module docstring
MAX_ACK_PENDING = 1000
DUPLICATE_WINDOW_S = 300.0  # as the ingress stream's
REQUEST_TIMEOUT_S = 5.0


def safe_url(url: str) -> str:
    """NATS URLs may carry user:password@; never print them."""
    parts = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        parts.append(f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else part)
    return ",".join(parts)


class NatsConnection:
    """One nats-py connection with the ingress driver's settings; remembers its last error."""

    def __init__(self, url: str, name: str, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.name = name
        self.connect_timeout_s = connect_timeout_s
        self.client: Client | None = None
        self.last_error = ""

    async def open(self) -> Client:
        """Connect, bounded: nats-py retries a first connect for ever when reconnects are.
        Opened already (a start retried after a failed set-up): that connection."""
        if self.client is not None and not self.client.is_closed:
            return self.client
        try:
            self.client = await asyncio.wait_for(self._connect(), self.connect_timeout_s * 2)
        except (OSError, TimeoutError, NatsError) as error:
            reason = self.last_error or str(error) or type(error).__name__
            raise BusError(f"cannot connect to NATS at {safe_url(self.url)}: {reason}") from error
        return self.client

    async def _connect(self) -> Client:
        return await nats.connect(
            servers=[part.strip() for part in self.url.split(",")],
            name=self.name,
            connect_timeout=self.connect_timeout_s,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )

    async def _on_error(self, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"

    async def _on_disconnected(self) -> None:
        if self.client is None:  # our own close(): nats-py reports it as a disconnect too
            return
        log.warning("NATS (%s) disconnected; reconnecting", self.name)

    async def _on_reconnected(self) -> None:
        log.info("NATS (%s) reconnected", self.name)

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def close(self) -> None:
        """Close, flushing what is written (acks included). Not nats-py's drain: it waits
        for subscription queues that a JetStream fetch never marks done."""
        client, self.client = self.client, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(TimeoutError, NatsError):
                await asyncio.wait_for(client.close(), 5)


class NatsCommand(ReceivedCommand):
    """One JetStream delivery; its settle operations are the consumer's ack protocol."""

    def __init__(self, msg: Msg, stats: SourceStats, ack_timeout_s: float) -> None:
        meta = msg.metadata
        bus_id = f"{meta.stream}:{meta.sequence.stream}"
        super().__init__(msg.data, meta.num_delivered, bus_id, stats)
        self._msg = msg
        self._ack_timeout_s = ack_timeout_s

    async def _ack(self) -> None:
        # Double ack: the server confirms, so "acked" means the command will not come back.
        await self._call("ack", self._msg.ack_sync(timeout=self._ack_timeout_s))

    async def _nak(self, delay_s: float) -> None:
        await self._call("nak", self._msg.nak(delay=delay_s or None))

    async def _term(self) -> None:
        await self._call("term", self._msg.term())

    async def _in_progress(self) -> None:
        await self._call("in_progress", self._msg.in_progress())

    @staticmethod
    async def _call(what: str, operation: Any) -> None:
        try:
            await operation
        except (NatsError, TimeoutError) as error:
            reason = str(error) or type(error).__name__
            raise BusError(f"JetStream {what} failed: {reason}") from error


class NatsCommandSource(CommandSource):
    """Commands from ``prefix + internal.egress.v1`` through a durable pull consumer."""

    name = "nats"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        stream: str = DEFAULT_STREAM,
        consumer: str = DEFAULT_CONSUMER,
        ack_wait_s: float = ACK_WAIT_S,
        max_deliver: int = MAX_DELIVER,
        max_ack_pending: int = MAX_ACK_PENDING,
        duplicate_window_s: float = DUPLICATE_WINDOW_S,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.subject = prefix + COMMAND_TOPIC
        self.dlq_subject = prefix + DLQ_TOPIC
        self.new_stream = stream  # created under this name only when none captures subject
        self.stream = ""  # the stream actually consumed, once found
        self.stream_created = False
        self.consumer = consumer
        self.ack_wait_s = ack_wait_s
        self.max_deliver = max_deliver
        self.max_ack_pending = max_ack_pending
        self.duplicate_window_s = duplicate_window_s
        self.request_timeout_s = request_timeout_s
        self.backoff = backoff or Backoff(0.2, 5.0)
        self.stats = SourceStats()
        self.backlog: int | None = None  # commands not yet delivered, as of the last fetch
        self._connection = NatsConnection(url, "ingress-egress/egress", connect_timeout_s)
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._closing = asyncio.Event()

    async def start(self) -> None:
        self._closing.clear()
        client = await self._connection.open()
        self._js = client.jetstream(timeout=self.request_timeout_s)
        try:
            await self._set_up()
        except BusError as error:
            self.stats.error(str(error))
            raise

    async def _set_up(self) -> None:
        """Find or create the stream, ensure the durable consumer, bind to it."""
        try:
            self.stream = await self._find_or_create_stream()
            await self._ensure_consumer()
            assert self._js is not None
            self._sub = await self._js.pull_subscribe_bind(
                durable=self.consumer, stream=self.stream
            )
        except (NatsError, TimeoutError) as error:
            reason = str(error) or type(error).__name__
            raise BusError(f"JetStream set-up for {self.subject}: {reason}") from error

    async def _find_or_create_stream(self) -> str:
        js = self._js
        assert js is not None
        found = await self._stream_capturing(self.subject)
        if found:
            return found
        subjects = [self.subject]
        if not await self._stream_capturing(self.dlq_subject):
            subjects.append(self.dlq_subject)
        config = StreamConfig(
            name=self.new_stream,
            subjects=subjects,
            retention=RetentionPolicy.WORK_QUEUE,
            duplicate_window=self.duplicate_window_s,
        )
        try:
            await js.add_stream(config)
        except NatsError:
            # Created concurrently (another member): use it if it now captures the subject.
            found = await self._stream_capturing(self.subject)
            if found:
                return found
            raise
        self.stream_created = True
        log.info("created JetStream stream %s for %s", self.new_stream, ", ".join(subjects))
        return self.new_stream

    async def _stream_capturing(self, subject: str) -> str:
        assert self._js is not None
        try:
            return await self._js.find_stream_name_by_subject(subject)
        except NotFoundError:
            return ""

    async def _ensure_consumer(self) -> None:
        js = self._js
        assert js is not None
        try:
            info = await js.consumer_info(self.stream, self.consumer)
        except NotFoundError:
            await js.add_consumer(self.stream, self._consumer_config())
            log.info("created JetStream consumer %s on %s", self.consumer, self.stream)
            return
        config = info.config
        filters = config.filter_subjects or [config.filter_subject or self.subject]
        if config.deliver_subject or config.ack_policy != AckPolicy.EXPLICIT:
            problem = "is not a pull consumer with explicit acks"
        elif self.subject not in filters:
            problem = f"consumes {', '.join(filters)}, not {self.subject}"
        else:
            return  # the operator's settings (ack wait, max deliver) are kept as they are
        raise BusError(
            f"JetStream consumer {self.consumer} on {self.stream} exists but {problem}; "
            "delete it or choose another EGRESS_CONSUMER",
            permanent=True,
        )

    def _consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.consumer,
            durable_name=self.consumer,
            filter_subject=self.subject,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_s,
            max_deliver=self.max_deliver,
            max_ack_pending=self.max_ack_pending,
        )

    async def receive(self, max_commands: int, timeout_s: float) -> list[ReceivedCommand]:
        if self._closing.is_set():
            return []
        if self._js is None:
            raise BusError("NATS command source not started")
        try:
            if self._sub is None:
                await self._set_up()
            assert self._sub is not None
            messages = await self._sub.fetch(max(1, max_commands), timeout=timeout_s)
        except (NatsTimeoutError, TimeoutError):
            return await self._nothing_came()
        except (NatsError, BusError, OSError) as error:
            await self._failed(error)
            return []
        self.backoff.reset()
        commands: list[ReceivedCommand] = []
        for msg in messages:
            command = NatsCommand(msg, self.stats, self.request_timeout_s)
            self.stats.delivered(command.delivery)
            commands.append(command)
            self.backlog = msg.metadata.num_pending
        return commands

    async def _nothing_came(self) -> list[ReceivedCommand]:
        """A fetch that timed out: no commands, or (disconnected) an outage."""
        if self._connection.connected:
            self.backoff.reset()
            self.backlog = 0
            return []
        reason = self._connection.last_error or "connection lost"
        self.stats.error(f"NATS disconnected ({reason}); reconnecting")
        await self.backoff.wait(self._closing)
        return []

    async def _failed(self, error: BaseException) -> None:
        """Count and report; bind again next time (the consumer may have gone)."""
        if self._closing.is_set():
            return
        reason = str(error) or type(error).__name__
        self.stats.error(f"receiving from {self.stream or self.subject}: {reason}")
        log.warning("egress consumer %s: %s", self.consumer, reason)
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except (NatsError, TimeoutError):
                pass  # the connection is down; the server forgets the interest with it
        await self.backoff.wait(self._closing)

    async def close(self) -> None:
        self._closing.set()
        self._sub = None
        self._js = None
        await self._connection.close()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    @property
    def connected(self) -> bool:
        return self._connection.connected and self._sub is not None

    def describe(self) -> dict[str, Any]:
        return {
            "driver": self.name,
            "connected": self.connected,
            "subject": self.subject,
            "stream": self.stream,
            "streamCreated": self.stream_created,
            "consumer": self.consumer,
            "ackWaitS": self.ack_wait_s,
            "maxDeliver": self.max_deliver,
            "backlog": self.backlog,
            **self.stats.describe(),
        }
