"""Reconnect delays: capped exponential backoff with full jitter, reset after a stable run."""

from __future__ import annotations

import random


class Backoff:
    def __init__(
        self,
        initial_s: float,
        maximum_s: float,
        stable_after_s: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.stable_after_s = stable_after_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Jittered: uniform in [initial/2, min(max, initial * 2^attempt)], never a tight loop."""
        ceiling = min(self.maximum_s, self.initial_s * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 32)
        return self._rng.uniform(min(self.initial_s / 2, ceiling), ceiling)

    def connection_ended(self, lasted_s: float) -> None:
        """A connection that stayed up long enough proves the path healthy again."""
        if lasted_s >= self.stable_after_s:
            self.attempt = 0
