"""The event loop's heartbeat: how late it runs, now and over about the last minute."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

HEARTBEAT_S = 0.5
LAG_WINDOW_S = 60.0  # a stall stays visible in the lag figure this long (no scrape runs in one)


class LoopHeartbeat:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._beat = clock()
        self._worst = (0.0, self._beat)  # (seconds late, when) for recent_loop_lag_s

    async def run(self) -> None:
        self._beat = self._clock()
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            self.beat()

    def beat(self) -> None:
        """One heartbeat, ``HEARTBEAT_S`` after the last one was due."""
        now = self._clock()
        lag = now - self._beat - HEARTBEAT_S
        worst, at = self._worst
        if lag >= worst or now - at > LAG_WINDOW_S:
            self._worst = (max(lag, 0.0), now)
        self._beat = now

    def loop_lag_s(self) -> float:
        return max(0.0, self._clock() - self._beat - HEARTBEAT_S)

    def recent_loop_lag_s(self) -> float:
        """The worst heartbeat lateness of about the last minute, or the current lag."""
        worst, at = self._worst
        if self._clock() - at > LAG_WINDOW_S:
            worst = 0.0
        return max(worst, self.loop_lag_s())
