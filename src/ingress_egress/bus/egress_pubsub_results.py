"""Egress results and dead letters to Google Pub/Sub, each awaited until Pub/Sub has it.

A result goes to the topic ``${BUS_PREFIX}`` + the command's finalization destination in the
same project, with the attributes the ingress driver gives its side publishes: ``id`` (the
record id) and ``type``. The topic belongs to its consumer: a missing one raises
``DestinationMissing`` and is never created here. Pub/Sub has no publish-side
de-duplication: a result published again after a crash reaches the finalizer twice with
the same ``id``, which is how it de-duplicates (docs/pubsub.md).
"""

from __future__ import annotations

import asyncio
import contextlib

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as api_exceptions

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_protocol import DestinationMissing, Published, ResultPublisher
from ingress_egress.bus.pubsub import classify, topic_path

PUBLISH_TIMEOUT_S = 15.0  # one publish RPC, as the ingress driver's
BATCH_MAX_LATENCY_S = 0.010


class PubSubResultPublisher(ResultPublisher):
    name = "pubsub"

    def __init__(
        self, project: str, *, prefix: str = "", publish_timeout_s: float = PUBLISH_TIMEOUT_S
    ) -> None:
        super().__init__(prefix)
        self.project = project
        self.publish_timeout_s = publish_timeout_s
        self._client: pubsub_v1.PublisherClient | None = None

    async def start(self) -> None:
        if not self.project:
            raise BusError("GOOGLE_CLOUD_PROJECT is not set (needed for Pub/Sub)", permanent=True)
        try:
            self._client = await asyncio.to_thread(self._make_client)
        except Exception as error:
            raise BusError(f"cannot create the Pub/Sub publisher: {error}") from error

    def _make_client(self) -> pubsub_v1.PublisherClient:
        return pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_latency=BATCH_MAX_LATENCY_S),
            publisher_options=pubsub_v1.types.PublisherOptions(
                retry=None, timeout=self.publish_timeout_s
            ),
        )

    async def _publish(
        self, subject: str, data: bytes, message_id: str, event_type: str
    ) -> Published:
        client = self._client
        if client is None:
            raise BusError("Pub/Sub result publisher not started")
        topic = topic_path(self.project, subject)
        try:
            future = client.publish(
                topic,
                data,
                retry=None,
                timeout=self.publish_timeout_s,
                id=message_id,
                type=event_type,
            )
            bus_id = await asyncio.wait_for(asyncio.wrap_future(future), self.publish_timeout_s + 5)
        except api_exceptions.NotFound as error:
            raise DestinationMissing(subject) from error
        except TimeoutError as error:
            raise BusError(f"Pub/Sub publish to {topic} timed out") from error
        except Exception as error:
            raise classify(error, topic) from error
        return Published(subject, str(bus_id))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(self._stop, client)

    @staticmethod
    def _stop(client: pubsub_v1.PublisherClient) -> None:
        with contextlib.suppress(RuntimeError):
            client.stop()
        with contextlib.suppress(Exception):
            client.transport.close()

    @property
    def connected(self) -> bool:
        return self._client is not None
