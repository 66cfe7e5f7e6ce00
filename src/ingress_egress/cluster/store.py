"""The coordination store's interface: member heartbeats and the cluster's wanted list.

The store is an existing engine (a NATS JetStream key-value bucket or Firestore), never a
home-made consensus: it only has to say which members refreshed their record within the TTL,
what each of them has joined, and hold one shared list of wanted channels. The coordinator
never learns which engine it talks to.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Protocol

from ingress_egress.retry import random_pause


class StoreUnavailable(Exception):
    """The store could not be reached or answered with an error; the caller keeps its view."""


@dataclass(frozen=True, slots=True)
class Member:
    """One live member as the store reports it."""

    instance_id: str
    joined: frozenset[str] = frozenset()
    seq: int = 0  # its heartbeat counter: a change means it is still beating


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """What a member publishes about itself, every heartbeat."""

    instance_id: str
    joined: tuple[str, ...] = ()
    started_at: str = ""
    seq: int = 0  # counts this member's heartbeats: readers time its age by their own clock

    def encode(self) -> bytes:
        body = {
            "instanceId": self.instance_id,
            "joined": list(self.joined),
            "startedAt": self.started_at,
            "seq": self.seq,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> Heartbeat:
        body = json.loads(data)
        joined = body.get("joined") or []
        return Heartbeat(
            instance_id=str(body["instanceId"]),
            joined=tuple(str(c) for c in joined),
            started_at=str(body.get("startedAt", "")),
            seq=int(body.get("seq", 0)),
        )


class CoordinationStore(Protocol):
    name: str  # "nats" | "firestore" | "memory"

    @property
    def changed(self) -> asyncio.Event:
        """Set when the store saw a change worth a rebalance (a member came or went, or the
        wanted list changed); stores that cannot watch never set it and are polled."""

    async def start(self) -> None:
        """Connect (raises ``StoreUnavailable`` when the engine cannot be reached)."""

    async def close(self) -> None: ...

    async def heartbeat(self, beat: Heartbeat) -> None:
        """Write this member's record; it counts as live for the TTL from now."""

    async def leave(self, instance_id: str) -> None:
        """Remove this member's record at once (a clean shutdown)."""

    async def members(self) -> dict[str, Member]:
        """The live members: records refreshed within the TTL."""

    async def wanted(self) -> tuple[str, ...] | None:
        """The cluster's wanted channels; ``None`` when nobody has written the list yet."""

    async def seed_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        """Write ``channels`` only if the store has no list yet; returns the list in force."""

    async def change_wanted(self, add: tuple[str, ...], remove: tuple[str, ...]) -> tuple[str, ...]:
        """Add and remove channels atomically (compare-and-set); returns the new list."""

    async def replace_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        """Make ``channels`` the list; returns it."""


async def contention_pause() -> None:
    """A short random pause before a compare-and-set is tried again, so that writers that
    collided do not collide again in lockstep."""
    await asyncio.sleep(random_pause(0.002, 0.03))


def apply_change(
    current: tuple[str, ...], add: tuple[str, ...], remove: tuple[str, ...]
) -> tuple[str, ...]:
    """``current`` with ``remove`` taken out and new ``add`` appended, order kept."""
    gone = set(remove)
    kept = [c for c in current if c not in gone]
    present = set(kept)
    for channel in add:
        if channel not in present and channel not in gone:
            kept.append(channel)
            present.add(channel)
    return tuple(kept)


@dataclass
class MemoryStore:
    """An in-process store for one process's tests of the coordinator: the same semantics
    (TTL on records, one shared list) with a clock the test controls."""

    ttl_s: float = 10.0
    name: str = "memory"
    now: float = 0.0
    up: bool = True
    records: dict[str, tuple[Heartbeat, float]] = field(default_factory=dict)
    channels: tuple[str, ...] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    def _check(self) -> None:
        if not self.up:
            raise StoreUnavailable("memory store is down")

    async def start(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    async def heartbeat(self, beat: Heartbeat) -> None:
        self._check()
        if beat.instance_id not in self.records:
            self._changed.set()
        self.records[beat.instance_id] = (beat, self.now)

    async def leave(self, instance_id: str) -> None:
        self._check()
        self.records.pop(instance_id, None)
        self._changed.set()

    async def members(self) -> dict[str, Member]:
        self._check()
        return {
            key: Member(key, frozenset(beat.joined), beat.seq)
            for key, (beat, at) in self.records.items()
            if self.now - at < self.ttl_s
        }

    async def wanted(self) -> tuple[str, ...] | None:
        self._check()
        return self.channels

    async def seed_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        self._check()
        if self.channels is None:
            self.channels = channels
        return self.channels

    async def change_wanted(self, add: tuple[str, ...], remove: tuple[str, ...]) -> tuple[str, ...]:
        self._check()
        self.channels = apply_change(self.channels or (), add, remove)
        self._changed.set()
        return self.channels

    async def replace_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        self._check()
        self.channels = channels
        self._changed.set()
        return channels
