"""In-process bus: keeps what it was given. For tests, benchmarks and trying things out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ingress_egress.bus.base import Publisher, SendResult, settled
from ingress_egress.envelope import OutboundMessage


class MemoryPublisher(Publisher):
    name = "memory"

    def __init__(self, keep: int | None = None) -> None:
        """``keep``: retain at most this many messages (None = all); ``count`` counts all."""
        self.messages: list[OutboundMessage] = []
        self.side: list[tuple[str, bytes, str]] = []  # (destination, data, message id)
        self.count = 0
        self.keep = keep
        self._connected = False
        self._done: asyncio.Future[Any] | None = None

    async def start(self) -> None:
        self._connected = True

    async def send(self, message: OutboundMessage) -> asyncio.Future[Any]:
        self.count += 1
        if self.keep is None or len(self.messages) < self.keep:
            self.messages.append(message)
        if self._done is None:
            self._done = settled()  # one resolved future serves every message
        return self._done

    async def send_many(self, messages: Sequence[OutboundMessage]) -> SendResult:
        if type(self).send is not MemoryPublisher.send:  # a subclass's send stays in the path
            return await super().send_many(messages)
        self.count += len(messages)
        if self.keep is None:
            self.messages.extend(messages)
        elif len(self.messages) < self.keep:
            self.messages.extend(messages[: self.keep - len(self.messages)])
        if self._done is None:
            self._done = settled()
        return ([(self._done, len(messages))] if messages else []), None

    async def publish_to(
        self, destination: str, data: bytes, *, message_id: str, event_type: str
    ) -> None:
        self.side.append((destination, data, message_id))

    async def close(self) -> None:
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "published": self.count}
