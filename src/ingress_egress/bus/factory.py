"""``MESSAGE_BUS_DRIVER`` -> a publisher. Drivers are imported only when chosen."""

from __future__ import annotations

from ingress_egress.bus.base import Publisher
from ingress_egress.config import Settings


def build_publisher(settings: Settings) -> Publisher:
    driver = settings.message_bus_driver
    if driver == "nats":
        from ingress_egress.bus.nats import NatsPublisher

        return NatsPublisher(
            settings.nats_url,
            settings.ingress_subject,
            settings.nats_stream,
            extra_subjects=(settings.dlq_subject,),
            max_pending=settings.publish_max_in_flight,
            ack_mode=settings.nats_ack_mode,
            ack_batch=settings.nats_ack_batch,
            ack_linger_s=settings.nats_ack_linger_ms / 1000,
            duplicate_window_s=settings.nats_duplicate_window_s,
        )
    if driver == "pubsub":
        from ingress_egress.bus.pubsub import PubSubPublisher

        return PubSubPublisher(settings)
    if driver == "memory":
        from ingress_egress.bus.memory import MemoryPublisher

        return MemoryPublisher(keep=100_000)
    from ingress_egress.bus.stdout import StdoutPublisher

    return StdoutPublisher()
