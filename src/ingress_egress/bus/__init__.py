"""Bus publishers: one interface (``Publisher``), one module per driver. What they send,
``OutboundMessage``, is the envelope package's (``ingress_egress.envelope``)."""

from ingress_egress.bus.base import BusError, Publisher

__all__ = ["BusError", "Publisher"]
