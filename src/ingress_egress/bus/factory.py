"""``MESSAGE_BUS_DRIVER`` -> a publisher. Drivers are imported only when chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ingress_egress.bus.base import Publisher
from ingress_egress.config import Settings

if TYPE_CHECKING:
    from ingress_egress.bus.pubsub import PubSubPublisher


def build_publisher(settings: Settings) -> Publisher:
    bus = settings.bus
    if bus.driver == "nats":
        from ingress_egress.bus.nats import NatsPublisher

        return NatsPublisher(
            bus.nats_url,
            bus.ingress_subject,
            bus.nats_stream,
            extra_subjects=(bus.dlq_subject,),
            max_pending=settings.delivery.max_in_flight,
            ack_mode=bus.nats_ack_mode,
            ack_batch=bus.nats_ack_batch,
            ack_linger_s=bus.nats_ack_linger_ms / 1000,
            duplicate_window_s=bus.nats_duplicate_window_s,
            native_framing=not settings.runtime.pure_python,
        )
    if bus.driver == "pubsub":
        return pubsub_publisher(settings)
    if bus.driver == "memory":
        from ingress_egress.bus.memory import MemoryPublisher

        return MemoryPublisher(keep=100_000)
    from ingress_egress.bus.stdout import StdoutPublisher

    return StdoutPublisher()


def pubsub_publisher(
    settings: Settings, topic: str | None = None, **options: Any
) -> PubSubPublisher:
    """The Pub/Sub driver for ``settings`` (``topic``: default the ingress subject)."""
    from ingress_egress.bus.pubsub import PubSubPublisher

    return PubSubPublisher(
        settings.google.project,
        topic or settings.bus.ingress_subject,
        create_topic=settings.bus.pubsub_create_topic,
        max_in_flight=settings.delivery.max_in_flight,
        emulator_host=settings.bus.pubsub_emulator_host,
        **options,
    )
