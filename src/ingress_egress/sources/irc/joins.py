"""JOIN pacing: Twitch's per-identity JOIN rate limit, the connection-rate gate, JOIN/PART lines.

One ``JoinLimiter`` and one ``ConnectGate`` are shared by every connection of an identity, so
first joins, rejoins after a reconnect and retries all count against the same budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

MAX_OUTGOING_LINE_BYTES = 510  # what we send: IRC's 512 minus CRLF


class JoinLimiter:
    """Sliding window of JOINs per identity (Twitch: 20 per 10 s; 2000 for verified bots).

    ``allowance_s`` keeps a slot busy a little past the window: Twitch counts a JOIN when it
    arrives, we count it when we send it, and the two clocks differ by the network delay.
    The deque holds at most ``limit`` send times (expired ones are dropped first).
    """

    def __init__(self, limit: int = 20, window_s: float = 10.0, allowance_s: float = 0.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self.allowance_s = allowance_s
        self._sent: deque[float] = deque()

    def available(self, now: float) -> int:
        span = self.window_s + self.allowance_s
        while self._sent and now - self._sent[0] >= span:
            self._sent.popleft()
        return self.limit - len(self._sent)

    def wait_s(self, now: float) -> float:
        if self.available(now) > 0:
            return 0.0
        return self.window_s + self.allowance_s - (now - self._sent[0])

    def record(self, now: float, count: int) -> None:
        self._sent.extend([now] * count)

    async def acquire(self, wanted: int) -> int:
        """Wait until at least one JOIN may be sent; take up to ``wanted`` slots."""
        while True:
            now = time.monotonic()
            room = self.available(now)
            if room > 0:
                granted = min(room, wanted)
                self.record(now, granted)
                return granted
            await asyncio.sleep(max(0.001, self.wait_s(now)))

    def describe(self) -> dict[str, float | int]:
        now = time.monotonic()
        return {
            "limit": self.limit,
            "windowSeconds": self.window_s,
            "availableNow": self.available(now),
        }


class ConnectGate:
    """At most one new connection per ``interval_s``, across the whole pool."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next_at = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        at = max(now, self._next_at)
        self._next_at = at + self.interval_s
        if at > now:
            await asyncio.sleep(at - now)


def _batched(command: str, channels: list[str]) -> list[str]:
    head = f"{command} "
    lines: list[str] = []
    batch: list[str] = []
    size = len(head)
    for channel in channels:
        item = f"#{channel}"
        if batch and size + len(item) + 1 > MAX_OUTGOING_LINE_BYTES:
            lines.append(head + ",".join(batch))
            batch, size = [], len(head)
        batch.append(item)
        size += len(item) + 1
    if batch:
        lines.append(head + ",".join(batch))
    return lines


def join_lines(channels: list[str]) -> list[str]:
    """``JOIN #a,#b,...`` lines, each within IRC's line limit."""
    return _batched("JOIN", channels)


def part_lines(channels: list[str]) -> list[str]:
    return _batched("PART", channels)
