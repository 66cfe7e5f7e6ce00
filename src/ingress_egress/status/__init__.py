"""The shared status objects the components write and the adapters read.

* ``counters``: ``Counters`` (what happened, by kind) and ``ErrorLog`` (the last errors);
* ``chat``: ``ChatState``, the chat source's connection and channels, changed only through
  its methods, read as a ``ChatSnapshot``;
* ``latency``: ``LatencyHistogram``, receipt -> bus ack.

They sit below the components (sources, pipeline, cluster) that write them and the
adapters (``runtime``, ``http``, ``observability``) that read them; this package imports
nothing else of the service. No locks: one event loop. Nothing here ever holds a secret.
"""

from ingress_egress.status.chat import ChatSnapshot, ChatState
from ingress_egress.status.counters import Counters, ErrorLog
from ingress_egress.status.latency import LatencyHistogram

__all__ = ["ChatSnapshot", "ChatState", "Counters", "ErrorLog", "LatencyHistogram"]
