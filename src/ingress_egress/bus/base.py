"""The publisher interface every bus driver implements.

The pipeline hands a driver an ``OutboundMessage`` (the envelope already encoded once) and
gets back a future that settles when the bus has acknowledged it. Sending and acknowledging
are separate so the pipeline can keep many publishes in flight (acks are pipelined) while
the order in which messages are *sent* stays the order in which they were received.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from ingress_egress.envelope import OutboundMessage


class BusError(Exception):
    """A publish or bus set-up failed. ``permanent`` marks a rejection a retry cannot fix."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# What ``Publisher.send_many`` returns: (ack future, messages it settles) runs, in order,
# and the error that stopped sending early (None when every message went out).
SendResult = tuple[list[tuple["asyncio.Future[Any]", int]], BaseException | None]


class Publisher(ABC):
    """A bus driver. ``start`` connects and ensures the destination exists."""

    name: str = "abstract"

    @abstractmethod
    async def start(self) -> None:
        """Connect and prepare the destination; raise ``BusError`` with a clear reason."""

    @abstractmethod
    async def send(self, message: OutboundMessage) -> asyncio.Future[Any]:
        """Send one message in call order; return a future settled by the bus's ack.

        A driver that acknowledges several messages at once returns the *same* future for
        all of them (the pipeline then handles that ack once). Raises ``BusError`` when the
        message cannot even be sent (e.g. disconnected).
        """

    async def send_many(self, messages: Sequence[OutboundMessage]) -> SendResult:
        """Send ``messages`` in order (the pipeline's hot path: one call per slice).

        Returns the runs ``(ack future, n)`` covering, in order, the messages that went
        out, a prefix of ``messages``: each future settles its ``n`` consecutive messages. A
        message the bus rejects outright (a permanent ``BusError``) is a run of 1 whose
        future holds that error. The second value is the error that stopped sending before
        the end (the rest was not sent), or None. This default calls ``send`` per message;
        drivers override it where a whole slice costs less than its messages one by one.
        """
        runs: list[tuple[asyncio.Future[Any], int]] = []
        for message in messages:
            try:
                future = await self.send(message)
            except BusError as error:
                if not error.permanent:
                    return runs, error
                future = asyncio.get_running_loop().create_future()
                future.set_exception(error)
            except Exception as error:  # a driver's unexpected failure: retried, in order
                return runs, error
            if runs and runs[-1][0] is future:
                runs[-1] = (future, runs[-1][1] + 1)
            else:
                runs.append((future, 1))
        return runs, None

    @abstractmethod
    async def close(self) -> None:
        """Flush what is in flight where the driver can, then disconnect."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while the driver believes it can publish."""

    def describe(self) -> dict[str, Any]:
        """Non-secret state for ``/_debug/twitch`` and ``/readyz``."""
        return {"driver": self.name, "connected": self.connected}

    async def publish_to(
        self, destination: str, data: bytes, *, message_id: str, event_type: str
    ) -> None:
        """Publish one message to another destination of this bus (dead letters, the
        finalizer) and wait for its acknowledgement. ``message_id`` is the de-duplication
        id. Raises ``BusError``: ``permanent`` when the destination does not exist."""
        raise BusError(f"the {self.name} bus has no destination {destination}", permanent=True)


def settled(value: Any = None) -> asyncio.Future[Any]:
    """A future that is already resolved: the ack of a driver that acks synchronously."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future
