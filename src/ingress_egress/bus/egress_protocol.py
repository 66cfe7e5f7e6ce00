"""What egress needs from a bus: a source of send commands and a publisher of their results.

A ``CommandSource`` hands out ``ReceivedCommand`` objects (the raw bytes as published, how
many times the bus has delivered them, and the bus's ack operations). Nothing is decoded
here: reading the command is the egress core's job. A ``ResultPublisher`` publishes one
record and returns only once the bus has acknowledged it, so that the caller may then
acknowledge the command.

Both bus drivers (NATS JetStream, Pub/Sub) implement these; docs/egress.md maps each
operation to the bus's own.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_dead_letters import DLQ_RECORD_TYPE, dead_letter_record
from ingress_egress.config.settings import EGRESS_TOPIC

COMMAND_TOPIC = EGRESS_TOPIC  # the one spelling, in config
DLQ_TOPIC = "internal.egress.dlq.v1"
FINALIZER_TOPIC = "internal.finalizer.v1"
FINALIZER_STATUS_TYPE = "internal.finalizer.status.v1"

# A destination a command may name: dot-separated tokens that are valid both as a NATS
# subject (no wildcards, no spaces) and inside a Pub/Sub topic id.
_DESTINATION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
MAX_DESTINATION_CHARS = 200
_LAST_ERROR_CHARS = 300


def valid_destination(name: str) -> bool:
    """True when ``name`` can be published to on both buses (no wildcards, no spaces)."""
    return len(name) <= MAX_DESTINATION_CHARS and _DESTINATION_RE.match(name) is not None


class DestinationMissing(BusError):
    """Nothing on the bus captures ``subject`` (no JetStream stream, no Pub/Sub topic).

    Not permanent: the destination belongs to another part of the platform, which may
    create it at any time. The caller keeps its command unacknowledged and tries again.
    """

    def __init__(self, subject: str) -> None:
        super().__init__(f"nothing captures {subject}: no stream or topic for it yet")
        self.subject = subject


@dataclass(frozen=True, slots=True)
class Published:
    """The bus's acknowledgement of one publish."""

    subject: str  # the full subject or topic id, prefix included
    bus_id: str  # JetStream: stream:sequence; Pub/Sub: the message id
    duplicate: bool = False  # JetStream de-duplicated it by Nats-Msg-Id (stored before)


@dataclass
class SourceStats:
    """What a command source reports in ``describe()``: counts and the last error."""

    received: int = 0
    redelivered: int = 0  # deliveries beyond a command's first
    acked: int = 0
    naked: int = 0
    termed: int = 0
    outstanding: int = 0  # handed out, not yet settled
    errors: int = 0
    last_error: str = ""
    last_error_at: float | None = field(default=None)

    def delivered(self, delivery: int) -> None:
        self.received += 1
        self.outstanding += 1
        if delivery > 1:
            self.redelivered += 1

    def settled(self, how: str) -> None:
        self.outstanding -= 1
        if how == "ack":
            self.acked += 1
        elif how == "nak":
            self.naked += 1
        else:
            self.termed += 1

    def error(self, reason: str) -> None:
        self.errors += 1
        self.last_error = reason[:_LAST_ERROR_CHARS]
        self.last_error_at = time.monotonic()

    def describe(self) -> dict[str, Any]:
        age = None if self.last_error_at is None else time.monotonic() - self.last_error_at
        return {
            "received": self.received,
            "redelivered": self.redelivered,
            "acked": self.acked,
            "naked": self.naked,
            "termed": self.termed,
            "outstanding": self.outstanding,
            "errors": self.errors,
            "lastError": self.last_error,
            "lastErrorAgeS": None if age is None else round(age, 1),
        }


class ReceivedCommand(ABC):
    """One delivery of a command. Settle it exactly once: ack, nak or term (``in_progress``
    only extends the time before the bus redelivers it)."""

    def __init__(
        self, data: bytes, delivery: int, bus_id: str, stats: SourceStats | None = None
    ) -> None:
        self.data = data  # the bytes as published, never altered
        self.delivery = delivery  # 1 on the first delivery, higher on redeliveries
        self.bus_id = bus_id  # stable across redeliveries (stream sequence, message id)
        self.received_at = time.monotonic()
        self.settled = False
        self._stats = stats  # the source's counts

    async def ack(self) -> None:
        """Done with it: the bus never delivers it again. Raises ``BusError`` when the bus
        could not confirm (the command may then come back; the caller's ledger covers it)."""
        if not self.settled:
            await self._ack()
            self._mark_settled("ack")

    async def nak(self, delay_s: float = 0.0) -> None:
        """Deliver it again after ``delay_s`` seconds (0: as soon as possible)."""
        if not self.settled:
            await self._nak(max(0.0, delay_s))
            self._mark_settled("nak")

    async def term(self) -> None:
        """Never deliver it again, without having handled it (it was dead-lettered)."""
        if not self.settled:
            await self._term()
            self._mark_settled("term")

    async def in_progress(self) -> None:
        """Still working on it: restart the bus's redelivery timer."""
        if not self.settled:
            await self._in_progress()

    def _mark_settled(self, how: str) -> None:
        self.settled = True
        if self._stats is not None:
            self._stats.settled(how)

    @abstractmethod
    async def _ack(self) -> None: ...

    @abstractmethod
    async def _nak(self, delay_s: float) -> None: ...

    @abstractmethod
    async def _term(self) -> None: ...

    @abstractmethod
    async def _in_progress(self) -> None: ...


class CommandSource(ABC):
    """Where egress commands come from. ``receive`` never raises for a bus outage: it
    records the error, waits a backoff and returns nothing, so the caller's loop goes on."""

    name: str = "abstract"

    @abstractmethod
    async def start(self) -> None:
        """Connect and find (or create) what is consumed; ``BusError`` with the reason."""

    @abstractmethod
    async def receive(self, max_commands: int, timeout_s: float) -> list[ReceivedCommand]:
        """Up to ``max_commands`` commands, waiting at most about ``timeout_s`` for the
        first; ``[]`` when none came, when the bus is unreachable (see ``describe``) and
        after ``close``. ``BusError`` only when never started."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving and disconnect; unsettled commands are redelivered later."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while commands can be received."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Non-secret state for ``/_debug/twitch``."""

    async def commands(
        self, batch: int = 10, timeout_s: float = 5.0
    ) -> AsyncIterator[ReceivedCommand]:
        """Every command, as it comes, until ``close``."""
        while not self.closed:
            for command in await self.receive(batch, timeout_s):
                yield command

    @property
    def closed(self) -> bool:
        return False


class ResultPublisher(ABC):
    """Publishes result records and dead letters under ``prefix``, each acknowledged."""

    name: str = "abstract"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.published = 0
        self.duplicates = 0
        self.missing = 0  # publishes that found no destination
        self.last_missing = ""  # the last subject that had none
        self.last_error = ""

    @abstractmethod
    async def start(self) -> None:
        """Connect; ``BusError`` with the reason."""

    @abstractmethod
    async def close(self) -> None: ...

    @property
    @abstractmethod
    def connected(self) -> bool: ...

    @abstractmethod
    async def _publish(
        self, subject: str, data: bytes, message_id: str, event_type: str
    ) -> Published:
        """One acknowledged publish to the full ``subject``: ``DestinationMissing`` when
        nothing captures it, ``BusError`` otherwise."""

    async def publish(
        self, subject: str, data: bytes, *, message_id: str, event_type: str
    ) -> Published:
        """One acknowledged publish to the full ``subject`` (prefix included)."""
        try:
            published = await self._publish(subject, data, message_id, event_type)
        except DestinationMissing as error:
            self.missing += 1
            self.last_missing = error.subject
            self.last_error = str(error)
            raise
        except BusError as error:
            self.last_error = str(error)[:_LAST_ERROR_CHARS]
            raise
        self.published += 1
        self.duplicates += published.duplicate
        return published

    async def publish_result(
        self,
        data: bytes,
        *,
        message_id: str,
        destination: str = FINALIZER_TOPIC,
    ) -> Published:
        """A result record to ``prefix + destination`` (the command's
        ``finalizationDestination``). ``message_id`` is the record's id, also its
        de-duplication id. A destination no bus could hold is a permanent ``BusError``."""
        if not valid_destination(destination):
            raise BusError(f"invalid finalization destination {destination[:80]!r}", permanent=True)
        return await self.publish(
            self.prefix + destination, data, message_id=message_id, event_type=FINALIZER_STATUS_TYPE
        )

    async def publish_dead_letter(
        self, command: ReceivedCommand, reason: str, *, now: float | None = None
    ) -> Published:
        """An unreadable command to ``prefix + internal.egress.dlq.v1`` with the reason.
        Its de-duplication id is ``dlq:<bus id>``: the bus's id of that message is stable
        across redeliveries (a dead letter published again after a crash is stored once,
        NATS) and, unlike an id read from a broken command, unique and well-formed."""
        record = dead_letter_record(
            command.data,
            reason,
            attempts=command.delivery,
            source=self.prefix + COMMAND_TOPIC,
            bus_id=command.bus_id,
            now=time.time() if now is None else now,
        )
        return await self.publish(
            self.prefix + DLQ_TOPIC,
            record,
            message_id=f"dlq:{command.bus_id}",
            event_type=DLQ_RECORD_TYPE,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "driver": self.name,
            "connected": self.connected,
            "published": self.published,
            "duplicates": self.duplicates,
            "destinationMissing": self.missing,
            "lastMissing": self.last_missing,
            "lastError": self.last_error,
        }
