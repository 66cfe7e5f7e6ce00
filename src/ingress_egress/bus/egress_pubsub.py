"""Egress commands from Google Pub/Sub: synchronous pull on one subscription.

Synchronous pull, not streaming pull, because egress wants exactly the control a pull
gives: commands are taken only when the egress core has room for them (streaming pull
leases up to its flow-control limit and extends every lease by itself, so a command could
sit in a local queue for minutes while Pub/Sub believes it is being worked on), each
command's ack deadline is ours to extend (``in_progress``) or shorten (``nak`` with a
delay: the deadline becomes the delay), and nothing runs in the client's callback threads.
The throughput is far below what pull handles (Twitch's limits: at most 7,500 messages per
30 s for a verified bot). Blocking calls run in worker threads, as in the ingress driver.

The subscription (``subscription``, default ``ingress-egress-egress``) is on the topic
``${BUS_PREFIX}internal.egress.v1``. As with the ingress topic, infrastructure creates both;
with ``create`` (the ingress driver's ``PUBSUB_CREATE_TOPIC``) a missing topic and a missing
subscription are created here (message ordering on, ack deadline ``ack_deadline_s``, never
expiring).

Pub/Sub reports delivery attempts only on subscriptions with a dead-letter policy. Without
one, ``delivery`` is what this process has seen of the message (1 again after a restart):
at-most-once rests on the egress core's ledger, never on this count.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as api_exceptions

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_backoff import Backoff
from ingress_egress.bus.egress_protocol import (
    COMMAND_TOPIC,
    CommandSource,
    ReceivedCommand,
    SourceStats,
)
from ingress_egress.bus.pubsub import topic_path

log = logging.getLogger("ingress_egress.bus.egress_pubsub")

DEFAULT_SUBSCRIPTION = "ingress-egress-egress"
ACK_DEADLINE_S = 30  # as the NATS consumer's ack_wait
MAX_ACK_DEADLINE_S = 600  # Pub/Sub's limit
RPC_TIMEOUT_S = 10.0
SEEN_MESSAGES = 10_000  # message ids whose deliveries this process counts
_EMPTY_PULL_FLOOR_S = 0.05  # an empty pull answered sooner than this is not polled again at once


def subscription_path(project: str, subscription: str) -> str:
    """``projects/{project}/subscriptions/{subscription}``; a full path is returned unchanged."""
    if subscription.startswith("projects/"):
        return subscription
    return f"projects/{project}/subscriptions/{subscription}"


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text[:300]


class PubSubCommand(ReceivedCommand):
    """One pulled message; its operations are acknowledge / modify-ack-deadline."""

    def __init__(
        self, received: Any, delivery: int, source: PubSubCommandSource, stats: SourceStats
    ) -> None:
        message = received.message
        super().__init__(bytes(message.data), delivery, message.message_id, stats)
        self.attributes = dict(message.attributes)
        self._ack_id = received.ack_id
        self._source = source

    async def _ack(self) -> None:
        await self._source.acknowledge(self._ack_id)

    async def _nak(self, delay_s: float) -> None:
        await self._source.modify_deadline(self._ack_id, math.ceil(delay_s))

    async def _term(self) -> None:
        # Pub/Sub has no "terminate": acknowledging is what stops redelivery.
        await self._source.acknowledge(self._ack_id)

    async def _in_progress(self) -> None:
        await self._source.modify_deadline(self._ack_id, self._source.ack_deadline_s)


class PubSubCommandSource(CommandSource):
    """Commands from a subscription on ``prefix + internal.egress.v1``."""

    name = "pubsub"

    def __init__(
        self,
        project: str,
        *,
        prefix: str = "",
        subscription: str = DEFAULT_SUBSCRIPTION,
        create: bool = False,
        ack_deadline_s: int = ACK_DEADLINE_S,
        rpc_timeout_s: float = RPC_TIMEOUT_S,
        backoff: Backoff | None = None,
    ) -> None:
        self.topic = topic_path(project, prefix + COMMAND_TOPIC)
        self.subscription = subscription_path(project, subscription)
        self.create = create
        self.created: list[str] = []  # what start() had to create
        self.ack_deadline_s = min(MAX_ACK_DEADLINE_S, max(10, ack_deadline_s))
        self.rpc_timeout_s = rpc_timeout_s
        self.backoff = backoff or Backoff()
        self.stats = SourceStats()
        self._client: pubsub_v1.SubscriberClient | None = None
        self._connected = False
        self._closing = asyncio.Event()
        self._seen: OrderedDict[str, int] = OrderedDict()

    async def start(self) -> None:
        self._closing.clear()
        try:
            if self._client is None:
                self._client = await asyncio.to_thread(pubsub_v1.SubscriberClient)
            await asyncio.to_thread(self._ensure_subscription, self._client)
        except BusError as error:
            self.stats.error(str(error))
            raise
        except Exception as error:  # transport, credentials, anything unexpected
            reason = f"cannot reach Pub/Sub for {self.subscription}: {_describe(error)}"
            self.stats.error(reason)
            raise BusError(reason) from error
        self._connected = True

    def _ensure_subscription(self, client: pubsub_v1.SubscriberClient) -> None:
        """Blocking: runs in a worker thread."""
        try:
            found = client.get_subscription(
                request={"subscription": self.subscription}, timeout=self.rpc_timeout_s
            )
        except api_exceptions.NotFound:
            if not self.create:
                raise BusError(
                    f"Pub/Sub subscription {self.subscription} does not exist; create it "
                    f"(infra) on {self.topic} or set PUBSUB_CREATE_TOPIC=true",
                    permanent=True,
                ) from None
            self._create_subscription(client)
            return
        except api_exceptions.PermissionDenied as error:
            raise BusError(
                f"permission denied on Pub/Sub subscription {self.subscription} (needs "
                f"roles/pubsub.subscriber): {_describe(error)}",
                permanent=True,
            ) from error
        if found.topic != self.topic:
            raise BusError(
                f"Pub/Sub subscription {self.subscription} is on {found.topic}, not {self.topic}",
                permanent=True,
            )

    def _create_subscription(self, client: pubsub_v1.SubscriberClient) -> None:
        self._create_topic()
        try:
            client.create_subscription(
                request={
                    "name": self.subscription,
                    "topic": self.topic,
                    "ack_deadline_seconds": self.ack_deadline_s,
                    "enable_message_ordering": True,
                    "expiration_policy": {},  # never expires, like a durable consumer
                },
                timeout=self.rpc_timeout_s,
            )
            self.created.append(self.subscription)
            log.info("created pubsub subscription %s on %s", self.subscription, self.topic)
        except api_exceptions.AlreadyExists:
            pass  # created concurrently by another member

    def _create_topic(self) -> None:
        publisher = pubsub_v1.PublisherClient()
        try:
            publisher.create_topic(request={"name": self.topic}, timeout=self.rpc_timeout_s)
            self.created.append(self.topic)
            log.info("created pubsub topic %s", self.topic)
        except api_exceptions.AlreadyExists:
            pass
        finally:
            publisher.transport.close()

    async def receive(self, max_commands: int, timeout_s: float) -> list[ReceivedCommand]:
        client = self._client
        if self._closing.is_set():
            return []
        if client is None:
            raise BusError("Pub/Sub command source not started")
        deadline = time.monotonic() + timeout_s
        while not self._closing.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            started = time.monotonic()
            try:
                pulled = await asyncio.to_thread(self._pull, client, max_commands, remaining)
            except Exception as error:
                await self._failed(error)
                return []
            self._connected = True
            self.backoff.succeeded()
            if pulled:
                return [self._command(received) for received in pulled]
            if time.monotonic() - started < _EMPTY_PULL_FLOOR_S:
                await asyncio.sleep(_EMPTY_PULL_FLOOR_S)
        return []

    def _pull(
        self, client: pubsub_v1.SubscriberClient, max_commands: int, timeout_s: float
    ) -> list[Any]:
        """Blocking: runs in a worker thread. No messages within the timeout is ``[]``."""
        try:
            response = client.pull(
                request={"subscription": self.subscription, "max_messages": max(1, max_commands)},
                timeout=max(0.1, timeout_s),
                retry=None,
            )
        except api_exceptions.DeadlineExceeded:
            return []
        return list(response.received_messages)

    def _command(self, received: Any) -> PubSubCommand:
        delivery = received.delivery_attempt or self._count_delivery(received.message.message_id)
        command = PubSubCommand(received, delivery, self, self.stats)
        self.stats.delivered(delivery)
        return command

    def _count_delivery(self, message_id: str) -> int:
        count = self._seen.pop(message_id, 0) + 1
        self._seen[message_id] = count
        while len(self._seen) > SEEN_MESSAGES:
            self._seen.popitem(last=False)
        return count

    async def _failed(self, error: BaseException) -> None:
        if self._closing.is_set():
            return
        self._connected = False
        if isinstance(error, api_exceptions.NotFound):
            reason = f"Pub/Sub subscription {self.subscription} does not exist"
        else:
            reason = f"pulling from {self.subscription}: {_describe(error)}"
        self.stats.error(reason)
        log.warning("egress subscription: %s", reason)
        await self.backoff.wait(self._closing)

    async def acknowledge(self, ack_id: str) -> None:
        client = self._open_client()
        request = {"subscription": self.subscription, "ack_ids": [ack_id]}
        await self._call(client.acknowledge, request, "acknowledge")

    async def modify_deadline(self, ack_id: str, seconds: int) -> None:
        client = self._open_client()
        request = {
            "subscription": self.subscription,
            "ack_ids": [ack_id],
            "ack_deadline_seconds": min(MAX_ACK_DEADLINE_S, max(0, seconds)),
        }
        await self._call(client.modify_ack_deadline, request, "modify the ack deadline")

    def _open_client(self) -> pubsub_v1.SubscriberClient:
        if self._client is None:
            raise BusError("Pub/Sub command source is closed")
        return self._client

    async def _call(self, rpc: Any, request: dict[str, Any], what: str) -> None:
        try:
            await asyncio.to_thread(rpc, request=request, timeout=self.rpc_timeout_s)
        except Exception as error:
            raise BusError(f"Pub/Sub could not {what}: {_describe(error)}") from error

    async def close(self) -> None:
        self._closing.set()
        client, self._client = self._client, None
        self._connected = False
        if client is not None:
            await asyncio.to_thread(client.close)

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    @property
    def connected(self) -> bool:
        return self._connected and self._client is not None

    def describe(self) -> dict[str, Any]:
        return {
            "driver": self.name,
            "connected": self.connected,
            "topic": self.topic,
            "subscription": self.subscription,
            "created": list(self.created),
            "ackDeadlineS": self.ack_deadline_s,
            "backlog": None,  # Pub/Sub tells it through Cloud Monitoring only
            **self.stats.describe(),
        }
