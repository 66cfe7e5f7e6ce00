"""Envelopes as JSON lines on stdout: the embedded default, for trying the service out."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

from ingress_egress.bus.base import Publisher, SendResult, settled
from ingress_egress.envelope import OutboundMessage


class StdoutPublisher(Publisher):
    name = "stdout"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream or sys.stdout.buffer
        self._connected = False
        self._done: asyncio.Future[Any] | None = None
        self.count = 0

    async def start(self) -> None:
        self._connected = True

    async def send(self, message: OutboundMessage) -> asyncio.Future[Any]:
        self._stream.write(message.data + b"\n")
        self._stream.flush()
        self.count += 1
        if self._done is None:
            self._done = settled()  # one resolved future serves every message
        return self._done

    async def send_many(self, messages: Sequence[OutboundMessage]) -> SendResult:
        """A slice as one write: one system call instead of one per envelope."""
        if not messages:
            return [], None
        try:
            self._stream.write(b"".join([m.data + b"\n" for m in messages]))
            self._stream.flush()
        except OSError as error:  # a closed pipe: retried in order like any bus failure
            return [], error
        self.count += len(messages)
        if self._done is None:
            self._done = settled()
        return [(self._done, len(messages))], None

    async def publish_to(
        self, destination: str, data: bytes, *, message_id: str, event_type: str
    ) -> None:
        """Dead letters and finalizer statuses are JSON lines too (they carry their type)."""
        self._stream.write(data + b"\n")
        self._stream.flush()

    async def close(self) -> None:
        self._stream.flush()
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected
