"""Egress results and dead letters to NATS JetStream, each acknowledged (a PubAck).

Every publish carries ``Nats-Msg-Id`` = the record's id, so one published again after a
crash (the command came back before its ack) is de-duplicated by the stream within its
duplicate window. The destination's stream belongs to whoever consumes it (the platform's
finalizer): this publisher never creates one. When no stream captures the subject,
JetStream has no responder for it and the publish raises ``DestinationMissing``.
"""

from __future__ import annotations

from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_nats import NatsConnection
from ingress_egress.bus.egress_protocol import DestinationMissing, Published, ResultPublisher

PUBLISH_TIMEOUT_S = 5.0


class NatsResultPublisher(ResultPublisher):
    name = "nats"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "",
        connect_timeout_s: float = 5.0,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        super().__init__(prefix)
        self.publish_timeout_s = publish_timeout_s
        self._connection = NatsConnection(url, "ingress-egress/egress-results", connect_timeout_s)
        self._js: JetStreamContext | None = None

    async def start(self) -> None:
        client = await self._connection.open()
        self._js = client.jetstream(timeout=self.publish_timeout_s)

    async def _publish(
        self, subject: str, data: bytes, message_id: str, event_type: str
    ) -> Published:
        js = self._js
        if js is None:
            raise BusError("NATS result publisher not started")
        if not self._connection.connected:
            raise BusError("NATS not connected")  # not into nats-py's reconnect buffer
        headers = {"Nats-Msg-Id": message_id, "Envelope-Type": event_type}
        try:
            ack = await js.publish(subject, data, timeout=self.publish_timeout_s, headers=headers)
        except NoStreamResponseError as error:
            raise DestinationMissing(subject) from error
        except MaxPayloadError as error:
            raise BusError(f"{len(data)} bytes exceed NATS max_payload", permanent=True) from error
        except (NatsError, TimeoutError) as error:
            reason = str(error) or type(error).__name__
            raise BusError(f"NATS publish to {subject} failed: {reason}") from error
        return Published(subject, f"{ack.stream}:{ack.seq}", bool(ack.duplicate))

    async def close(self) -> None:
        self._js = None
        await self._connection.close()

    @property
    def connected(self) -> bool:
        return self._connection.connected
