"""Counters and the error log shared by the source, the pipeline and the HTTP surface.

Counters are plain integers the hot path increments (no locks: one event loop);
``/_debug/twitch``, ``/readyz`` and the metrics read them. Nothing here holds a secret.
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
        self.entries.append({"at": iso_now(), "code": code, "message": message[:300]})
        while len(self.entries) > self.size:
            self.entries.popleft()

    @property
    def last(self) -> dict[str, Any] | None:
        return self.entries[-1] if self.entries else None


def iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def iso_from_monotonic(moment: float) -> str:
    """A ``time.monotonic()`` moment as UTC ISO-8601 with milliseconds."""
    epoch = time.time() - (time.monotonic() - moment)
    whole = int(epoch)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((epoch - whole) * 1000):03d}Z"
