"""De-duplication of the overlap while a RECONNECT replacement and the old connection both read.

Active only during an overlap (and a short grace after it), so the read loop pays nothing
the rest of the time. While active, each envelope costs a set lookup, a set insert and a
deque append; memory is bounded by ``capacity`` keys (``sources.recent.RecentKeys``, the
structure EventSub uses too).

The key is the envelope's ``dedup_id``, the one the bus de-duplicates by as well: Twitch's
``id`` tag for PRIVMSG and USERNOTICE, and for events without one (CLEARCHAT, CLEARMSG,
ROOMSTATE) the envelope id, which is derived from their content (room, ``tmi-sent-ts``,
target or settings): the same line read on both connections counts once. The full ROOMSTATE
a fresh JOIN produces has other settings than anything seen in the overlap and is passed
on: it restates the room's settings, harmlessly. Connection-level lines (PING, JOIN echoes,
NOTICEs, numerics) make no envelope and are never deduped.
"""

from __future__ import annotations

from ingress_egress.envelope import OutboundMessage
from ingress_egress.sources.recent import RecentKeys

DEFAULT_CAPACITY = 20_000


def first_copies(recent: RecentKeys, envelopes: list[OutboundMessage]) -> list[OutboundMessage]:
    """The envelopes whose ``dedup_id`` ``recent`` has not seen, in order (and now seen)."""
    return [outbound for outbound in envelopes if recent.first_time(outbound.dedup_id)]
