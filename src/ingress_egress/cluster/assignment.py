"""Which members read which channels: rendezvous (highest-random-weight) hashing.

Every member computes the same answer from the channel and the live member ids alone, so no
leader and no stored assignment are needed. A channel's readers are the ``replicas``
members with the highest weight ``h(channel, member)``; adding or removing a member moves
only the channels it wins or loses (about ``replicas / members`` of them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(channel: str, member: str) -> int:
    """A 64-bit weight, uniform and independent per (channel, member) pair.

    BLAKE2b, not Python's ``hash()``: every process (and every Python version) must agree.
    """
    digest = hashlib.blake2b(f"{channel}\x00{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def readers_of(channel: str, members: Iterable[str], replicas: int) -> tuple[str, ...]:
    """The ``replicas`` members that read ``channel`` (all of them when there are fewer),
    best first. Ties (astronomically rare) are broken by the member id."""
    ranked = sorted(members, key=lambda member: (weight(channel, member), member), reverse=True)
    return tuple(ranked[:replicas])


def assign(
    channels: Iterable[str], members: Iterable[str], replicas: int
) -> dict[str, tuple[str, ...]]:
    """``{channel: its readers}`` for every channel."""
    live = sorted(set(members))
    return {channel: readers_of(channel, live, replicas) for channel in channels}


def owned_by(
    member: str, channels: Iterable[str], members: Iterable[str], replicas: int
) -> set[str]:
    """The channels ``member`` reads when ``members`` are live (``member`` counted among them)."""
    live = sorted({*members, member})
    return {c for c in channels if member in readers_of(c, live, replicas)}
