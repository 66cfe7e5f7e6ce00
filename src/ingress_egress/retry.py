"""The one backoff policy: capped exponential growth with full jitter, on tenacity.

Every loop that backs off uses it, so that many members, connections or instances failing
together spread their retries out instead of hammering a recovering service in lockstep.
The n-th delay (n from 1) is uniform between half the initial delay (never a tight loop)
and ``min(maximum, initial * 2 ** (n - 1))``: tenacity's ``wait_random_exponential``.

* ``Backoff``: for loops that sleep themselves (reconnects, start-up connects). It counts
  its own attempts; ``reset()`` (or a connection that lasted ``stable_after_s``) starts over.
* ``retrying(...)``: a tenacity ``AsyncRetrying`` for code that retries one call.
* ``random_pause(...)``: one random pause, not growing (a compare-and-set tried again, an
  immediate reconnect), so that peers that collided do not collide again.

The randomness is tenacity's (the ``random`` module); tests seed it there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tenacity import AsyncRetrying, RetryCallState, wait_random, wait_random_exponential
from tenacity.retry import retry_base
from tenacity.stop import stop_base
from tenacity.wait import wait_base

# Past this many doublings every ceiling is the maximum anyway; stops the count growing.
_ATTEMPT_CAP = 64


def wait_policy(initial_s: float, maximum_s: float) -> wait_base:
    """The policy as a tenacity wait strategy (for ``AsyncRetrying(wait=...)``)."""
    floor = min(initial_s / 2, maximum_s)  # the maximum holds even if set below the initial
    return wait_random_exponential(multiplier=initial_s, max=maximum_s, min=floor)


class Backoff:
    """Delays for a loop that sleeps itself: ``next_delay()`` after each failure."""

    def __init__(self, initial_s: float, maximum_s: float, stable_after_s: float = 60.0) -> None:
        self.initial_s = initial_s
        self.maximum_s = maximum_s
        self.stable_after_s = stable_after_s
        self.attempt = 0  # failures since the last reset
        self._wait = wait_policy(initial_s, maximum_s)
        # tenacity's strategies read only ``attempt_number`` from the call state; one state,
        # owned here, lets the same strategy serve loops that are not a tenacity retry.
        self._state = RetryCallState(AsyncRetrying(), None, (), {})

    def delay_for(self, attempt: int) -> float:
        """The delay after the ``attempt``-th failure in a row (from 1); the count untouched."""
        self._state.attempt_number = max(1, min(attempt, _ATTEMPT_CAP))
        return self._wait(self._state)

    def next_delay(self) -> float:
        """The delay after one more failure."""
        self.attempt = min(self.attempt + 1, _ATTEMPT_CAP)
        return self.delay_for(self.attempt)

    def reset(self) -> None:
        """The path works again: the next failure starts from the initial delay."""
        self.attempt = 0

    async def wait(self, stop: asyncio.Event) -> None:
        """Sleep one more failure's delay, or less when ``stop`` is set meanwhile (closing)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self.next_delay())

    def connection_ended(self, lasted_s: float) -> None:
        """A connection that stayed up long enough proves the path healthy again."""
        if lasted_s >= self.stable_after_s:
            self.reset()


def retrying(
    initial_s: float,
    maximum_s: float,
    *,
    stop: stop_base,
    retry: retry_base,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> AsyncRetrying:
    """``AsyncRetrying`` waiting by the policy; the caller says when to stop and what to retry."""
    return AsyncRetrying(
        stop=stop,
        retry=retry,
        wait=wait_policy(initial_s, maximum_s),
        before_sleep=before_sleep,
        reraise=True,
    )


_NO_STATE = RetryCallState(AsyncRetrying(), None, (), {})  # wait_random reads nothing of it


def random_pause(low_s: float, high_s: float) -> float:
    """A random pause in [low, high]: peers that would act at the same moment spread out."""
    return float(wait_random(low_s, high_s)(_NO_STATE))
