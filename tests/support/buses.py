"""Both real bus drivers behind one test-facing shape, so one suite runs against each."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ingress_egress.bus.base import Publisher
from ingress_egress.bus.factory import build_publisher
from ingress_egress.config import Settings
from ingress_egress.envelope import OutboundMessage
from tests.support.nats import Received

CONTRACT_CHANNELS = {"alpha": "1001", "beta": "1002", "gamma": "1003"}  # login -> room id


def outbound(channel: str, seq: int) -> OutboundMessage:
    """Message ``seq`` of ``channel``: ids and ordering key derived from both, non-ASCII text."""
    envelope_id = f"00000000-0000-4000-8000-{seq:012d}"
    body = {"id": envelope_id, "channel": channel, "seq": seq, "text": 'héllo 🎉 "quoted"'}
    return OutboundMessage(
        data=json.dumps(body, ensure_ascii=False).encode(),
        envelope_id=envelope_id,
        dedup_id=f"twitch-{channel}-{seq}",
        type="external.chat.message.v1",
        traceparent=f"00-{seq:032x}-{seq:016x}-01",
        ordering_key=CONTRACT_CHANNELS[channel],
        time="2026-11-22T00:00:00.000Z",
        channel=channel,
    )


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
