"""Counters and connection state shared by the source, the pipeline and the HTTP surface.

Components write plain attributes (no locks: one event loop); ``/_debug/twitch`` and
``/readyz`` read them. Nothing here ever holds a secret.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    received: int = 0  # event lines read from Twitch (every line, before filtering)
    published: int = 0  # envelopes acknowledged by the bus
    failed: int = 0  # envelopes given up on after retries (or rejected permanently)
    parse_errors: int = 0  # lines that were not IRC
    retries: int = 0  # publish attempts beyond the first
    dropped: int = 0  # envelopes that found the queue full (never silent: logged too)
    invalid_utf8: int = 0  # reads whose bytes were not UTF-8 (replaced, still processed)
    oversized_lines: int = 0  # lines over the maximum line length, discarded (logged too)
    unknown_commands: int = 0  # lines with a command this service has no type for, ignored
    # delivery guarantees (docs/delivery.md)
    refused: int = 0  # envelopes the full spool could not take (never silent: logged too)
    spilled: int = 0  # envelopes kept only in the spool while the memory queue was full
    replayed: int = 0  # envelopes read back from the spool (spilled, or left by a restart)
    spool_lost: int = 0  # spooled envelopes lost to damage on disk (ranges: /_debug/twitch)
    dead_lettered: int = 0  # permanently rejected envelopes published to the DLQ
    dead_letter_failed: int = 0  # ... whose dead letter could not be published either
    finalizer_statuses: int = 0  # failure statuses sent towards the finalizer
    finalizer_unreachable: int = 0  # failure statuses the finalizer destination refused

    def as_dict(self) -> dict[str, int]:
        return {
            "received": self.received,
            "published": self.published,
            "failed": self.failed,
            "parseErrors": self.parse_errors,
            "retries": self.retries,
            "dropped": self.dropped,
            "invalidUtf8": self.invalid_utf8,
            "oversizedLines": self.oversized_lines,
            "unknownCommands": self.unknown_commands,
            "refused": self.refused,
            "spilled": self.spilled,
            "replayed": self.replayed,
            "spoolLost": self.spool_lost,
            "deadLettered": self.dead_lettered,
            "deadLetterFailed": self.dead_letter_failed,
            "finalizerStatuses": self.finalizer_statuses,
            "finalizerUnreachable": self.finalizer_unreachable,
        }


@dataclass
class ErrorLog:
    """The last few errors, simplified for humans: a code, a short message, a time."""

    size: int = 20
    entries: deque[dict[str, Any]] = field(default_factory=deque)

    def add(self, code: str, message: str) -> None:
        self.entries.append({"at": _iso_now(), "code": code, "message": message[:300]})
        while len(self.entries) > self.size:
            self.entries.popleft()

    @property
    def last(self) -> dict[str, Any] | None:
        return self.entries[-1] if self.entries else None


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


@dataclass
class ChatState:
    """What the chat source reports: connection, channels wanted vs confirmed by Twitch."""

    transport: str
    identity: str
    wanted: tuple[str, ...]
    connected: bool = False
    logged_in: bool = False
    joined: set[str] = field(default_factory=set)
    failed_channels: dict[str, str] = field(default_factory=dict)  # channel -> NOTICE msg-id
    reconnects: int = 0
    last_reconnect_at: str | None = None
    connected_since: float | None = None
    server: str = ""
    duplicates_dropped: int = 0  # overlap copies dropped after a RECONNECT (by message id)
    # How many live connections confirmed each channel (two during a RECONNECT overlap).
    _joined_on: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def pending(self) -> list[str]:
        return [c for c in self.wanted if c not in self.joined and c not in self.failed_channels]

    def confirm_joined(self, channel: str) -> None:
        """Twitch confirmed a JOIN (echo or ROOMSTATE) on one connection."""
        self._joined_on[channel] = self._joined_on.get(channel, 0) + 1
        self.joined.add(channel)
        self.failed_channels.pop(channel, None)

    def lose_joined(self, channel: str) -> None:
        """One connection left ``channel`` (PART, disconnect); joined while another has it."""
        left = self._joined_on.get(channel, 0) - 1
        if left > 0:
            self._joined_on[channel] = left
        else:
            self._joined_on.pop(channel, None)
            self.joined.discard(channel)

    def mark_failed(self, channel: str, reason: str) -> None:
        self.failed_channels[channel] = reason

    def set_wanted(self, channels: tuple[str, ...]) -> None:
        self.wanted = channels
        wanted = set(channels)
        for channel in [c for c in self.failed_channels if c not in wanted]:
            del self.failed_channels[channel]

    def mark_reconnect(self) -> None:
        self.reconnects += 1
        self.last_reconnect_at = _iso_now()
