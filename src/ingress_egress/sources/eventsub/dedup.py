"""A bounded memory of recently seen ids: Twitch delivers EventSub messages at least once."""

from __future__ import annotations

from collections import OrderedDict


class RecentIds:
    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, key: str) -> bool:
        """True the first time ``key`` is offered (within the last ``size`` keys)."""
        if not key:
            return True  # nothing to compare: deliver
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
