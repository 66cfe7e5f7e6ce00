"""The send lease as the egress sender sees it: may this process send for the bot now?

Twitch's limits are per bot account, so in cluster mode exactly one member sends at a time:
the holder of a lease in the coordination store (``cluster/lease_keeper.py`` keeps it; the
composition root wires it here, since egress and cluster do not import each other). A
single instance holds it always (``SoloLease``).

The sender asks ``may_send()`` right before each message goes to Twitch, and starts or
stops consuming ``internal.egress.v1`` when the lease tells it (``on_gained`` /
``on_lost``). ``may_send`` turns false by time alone, before any other member may take
over, whether or not the loss was noticed yet (docs/egress.md, "Cluster mode: one sender").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ingress_egress.egress.result import iso_time

log = logging.getLogger("ingress_egress.egress.lease")

OnGained = Callable[[int], Awaitable[None]]  # called with the new fence
OnLost = Callable[[str], Awaitable[None]]  # called with why

SOLO_FENCE = 1


class SendLease(Protocol):
    """What the sender reads (``LeaseKeeper`` in cluster mode, ``SoloLease`` otherwise)."""

    @property
    def holder(self) -> str | None:
        """Who holds the lease as far as this member knows (None: nobody, or unknown)."""

    @property
    def fence(self) -> int:
        """The fencing token: strictly greater for each new holder (0: never held here)."""

    def may_send(self, now: float | None = None) -> bool:
        """True only while this member holds the lease and no other member can have taken
        it over yet. ``now`` is on the lease's own clock (default: read it)."""

    def listen(self, on_gained: OnGained | None, on_lost: OnLost | None) -> None:
        """Set who hears of gains and losses (the sender starts and stops consuming)."""

    async def run(self) -> None:
        """Keep the lease until ``leave`` (a task of the service)."""

    async def leave(self) -> None:
        """Stop sending (``on_lost`` runs and is awaited), then give the lease up at once."""

    def describe(self) -> dict[str, Any]:
        """For ``/_debug/twitch``: holder, fence, held since, last renewal, takeovers."""


class SoloLease:
    """One instance, no cluster: the lease is this process's from start to ``leave``."""

    def __init__(
        self,
        holder: str,
        on_gained: OnGained | None = None,
        on_lost: OnLost | None = None,
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._holder = holder
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._held = False
        self._held_since: float | None = None
        self._left = asyncio.Event()
        self._wall = wall

    @property
    def holder(self) -> str | None:
        return self._holder if self._held else None

    @property
    def fence(self) -> int:
        return SOLO_FENCE

    def may_send(self, now: float | None = None) -> bool:
        return self._held

    def listen(self, on_gained: OnGained | None, on_lost: OnLost | None) -> None:
        self._on_gained = on_gained
        self._on_lost = on_lost

    async def run(self) -> None:
        if self._left.is_set():
            return
        self._held = True
        self._held_since = self._wall()
        await _call(self._on_gained, SOLO_FENCE)
        await self._left.wait()

    async def leave(self) -> None:
        if self._left.is_set():
            return
        self._left.set()
        if self._held:
            self._held = False
            await _call(self._on_lost, "leaving")

    def describe(self) -> dict[str, Any]:
        return {
            "mode": "solo",
            "holder": self.holder,
            "self": self._held,
            "fence": SOLO_FENCE,
            "heldSince": None if self._held_since is None else iso_time(self._held_since),
            "lastRenewalAgeSeconds": None,
            "takeovers": 0,
        }


async def _call(callback: Callable[[Any], Awaitable[None]] | None, argument: Any) -> None:
    """Run a listener; its failure is logged, never allowed to end the lease's loop."""
    if callback is None:
        return
    try:
        await callback(argument)
    except Exception:
        log.exception("send lease listener failed")
