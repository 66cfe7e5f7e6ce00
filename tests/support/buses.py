"""Both real bus drivers behind one test-facing shape, so one suite runs against each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ingress_egress.bus.base import Publisher
from ingress_egress.bus.factory import build_publisher
from ingress_egress.config import Settings
from tests.support.nats import Received


@dataclass
class BusUnderTest:
    name: str
    settings: Settings
    received: Callable[[int, float], Awaitable[list[Received]]]

    def publisher(self) -> Publisher:
        return build_publisher(self.settings)

    async def exactly(self, n: int, timeout: float = 30.0) -> list[Received]:
        """The ``n`` messages the bus holds, failing on fewer and on any extra one."""
        got = await self.received(n, timeout)
        assert len(got) >= n, f"{self.name}: {len(got)} of {n} messages arrived"
        extra = got[n:] + await self.received(1, 0.5) if self.name == "pubsub" else got[n:]
        assert not extra, f"{self.name}: {len(extra)} unexpected extra message(s)"
        return got[:n]
