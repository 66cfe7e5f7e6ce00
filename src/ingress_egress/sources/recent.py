"""A bounded memory of recently seen keys, shared by both sources.

IRC uses it for the overlap of a RECONNECT (the same chat read on two connections), EventSub
for Twitch's at-least-once delivery (the same notification sent twice). One key costs a set
lookup, a set insert and a deque append; memory is bounded by ``capacity`` keys, the oldest
forgotten first (first in, first out: a repeat does not refresh a key, since a duplicate
arrives within seconds of the original, long before ``capacity`` newer keys have).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class RecentKeys:
    """The last ``capacity`` keys seen, oldest forgotten first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: set[Hashable] = set()
        self._order: deque[Hashable] = deque()

    def first_time(self, key: Hashable) -> bool:
        """True unless ``key`` is among the last ``capacity`` keys offered."""
        keys = self._keys
        if key in keys:
            return False
        keys.add(key)
        self._order.append(key)
        if len(self._order) > self.capacity:
            keys.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._order)
