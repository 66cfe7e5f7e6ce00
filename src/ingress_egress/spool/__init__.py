"""The durable local spool: a write-ahead journal of envelopes the bus has not acknowledged."""

from ingress_egress.spool.journal import Spool, SpoolError

__all__ = ["Spool", "SpoolError"]
