"""Bus publishers: one interface (``Publisher``), one module per driver."""

from ingress_egress.bus.base import BusError, OutboundMessage, Publisher

__all__ = ["BusError", "OutboundMessage", "Publisher"]
