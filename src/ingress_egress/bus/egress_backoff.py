"""How long an egress consumer waits after consecutive bus failures.

The one place the egress bus code asks tenacity for a delay (exponential with jitter,
capped), so that it can be swapped for the project's shared retry policy in one edit.
"""

from __future__ import annotations

import asyncio
import contextlib

from tenacity import AsyncRetrying, RetryCallState, wait_exponential_jitter


class Backoff:
    """Delays that grow with each consecutive failure and start over after a success."""

    def __init__(self, initial_s: float = 0.2, max_s: float = 5.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._wait = wait_exponential_jitter(multiplier=initial_s, max=max_s, jitter=initial_s)

    def next_delay(self) -> float:
        self.failures += 1
        state = RetryCallState(AsyncRetrying(), None, (), {})
        state.attempt_number = self.failures
        return min(self.max_s, self._wait(state))

    def succeeded(self) -> None:
        self.failures = 0

    async def wait(self, stop: asyncio.Event) -> None:
        """Sleep the next delay, or less when ``stop`` is set meanwhile (closing)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.next_delay())
