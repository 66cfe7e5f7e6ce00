"""The send lease in the coordination store: one member sends for the bot at a time.

A lease is one record in the store the cluster already uses (``lease_nats.py``: a key in a
JetStream key-value bucket; ``lease_firestore.py``: one document). Its holder rewrites it
every heartbeat (``renew``), each write conditioned on the holder's previous one; another
member takes it (``acquire``) only when it is free (released) or has not been rewritten for
the TTL, judged by the store's own clock, never a member's. Each acquisition gets a fence
strictly greater than every earlier one.

``LeaseKeeper`` (``lease_keeper.py``) drives it and decides when its holder must stop
sending; this module is the engines' common interface and an in-process engine for tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ingress_egress.cluster.store import StoreUnavailable

LEASE_NAME = "egress-sender"  # the one lease so far: who sends for the bot identity


class LeaseLost(Exception):
    """A renewal found the lease no longer ours: expired, or taken by ``holder``."""

    def __init__(self, holder: str | None, fence: int = 0) -> None:
        super().__init__(f"lease taken by {holder}" if holder else "lease expired")
        self.holder = holder
        self.fence = fence


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """The lease is ours: ``version`` is the engine's condition for the next write (a KV
    revision, a document's update time)."""

    holder: str
    term: str  # random per keeper: a restarted member with the same id is somebody else
    fence: int
    version: Any


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """The lease is somebody else's (``holder``), or was just taken in a race."""

    holder: str | None
    fence: int = 0


class LeaseStore(Protocol):
    name: str  # "nats" | "firestore" | "memory"

    @property
    def ttl_s(self) -> float:
        """How long the store keeps an unrenewed lease (after ``start``: what the store
        really applies, which the holder's safety margin is measured against)."""

    @property
    def changed(self) -> asyncio.Event:
        """Set when the lease may just have been freed (a release seen by a watch), so a
        follower tries at once; stores that cannot watch never set it and are polled."""

    async def start(self) -> None:
        """Connect (raises ``StoreUnavailable``)."""

    async def close(self) -> None: ...

    async def acquire(self, holder: str, term: str) -> LeaseGrant | LeaseHolder:
        """Take the lease if it is free, expired, or already ours (same holder and term):
        a new fence. Otherwise who holds it. ``StoreUnavailable`` on any failure."""

    async def renew(self, grant: LeaseGrant) -> LeaseGrant:
        """Rewrite the lease if it is still ours (``LeaseLost`` if not): the store's TTL
        starts again no earlier than this call was made."""

    async def release(self, grant: LeaseGrant) -> None:
        """Free the lease if it is still ours (if not, nothing to do)."""


def encode_value(holder: str, term: str, fence: int, ttl_s: float) -> bytes:
    body = {"holder": holder, "term": term, "fence": fence, "ttlSeconds": ttl_s}
    return json.dumps(body, separators=(",", ":")).encode()


def decode_value(data: bytes | None) -> dict[str, Any] | None:
    """A lease record's fields, or None when it cannot be read."""
    try:
        body = json.loads(data or b"")
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("holder"), str):
        return None
    return body


UNREADABLE_HOLDER = "(unreadable lease record)"


@dataclass
class _MemoryRecord:
    holder: str | None
    term: str | None
    fence: int
    written_at: float


@dataclass
class MemoryLeaseStore:
    """An in-process lease with a clock the test controls: the engines' semantics (TTL in
    the store's time, conditioned writes, fence per acquisition) and a switch to fail."""

    ttl: float = 10.0
    clock: Callable[[], float] = field(default=lambda: 0.0)
    name: str = "memory"
    up: bool = True
    record: _MemoryRecord | None = None
    writes: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ttl_s(self) -> float:
        return self.ttl

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    def _check(self) -> None:
        if not self.up:
            raise StoreUnavailable("memory lease store is down")

    def _expired(self, record: _MemoryRecord) -> bool:
        return self.clock() - record.written_at >= self.ttl

    async def start(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    async def acquire(self, holder: str, term: str) -> LeaseGrant | LeaseHolder:
        self._check()
        current = self.record
        if current is not None and current.holder is not None:
            ours = (current.holder, current.term) == (holder, term)
            if not ours and not self._expired(current):
                return LeaseHolder(current.holder, current.fence)
        fence = (current.fence if current is not None else 0) + 1
        return self._write(holder, term, fence)

    async def renew(self, grant: LeaseGrant) -> LeaseGrant:
        self._check()
        current = self.record
        if current is None or current.holder is None or self._expired(current):
            raise LeaseLost(None)
        if (current.holder, current.term, current.fence) != (grant.holder, grant.term, grant.fence):
            raise LeaseLost(current.holder, current.fence)
        return self._write(grant.holder, grant.term, grant.fence)

    async def release(self, grant: LeaseGrant) -> None:
        self._check()
        current = self.record
        if current is not None and (current.holder, current.term) == (grant.holder, grant.term):
            current.holder = current.term = None
            self._changed.set()

    def _write(self, holder: str, term: str, fence: int) -> LeaseGrant:
        self.writes += 1
        self.record = _MemoryRecord(holder, term, fence, self.clock())
        return LeaseGrant(holder, term, fence, self.writes)
