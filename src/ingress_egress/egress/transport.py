"""How a chat message reaches Twitch, whichever way it goes (IRC PRIVMSG or Helix).

A ``ChatTransport`` sends one message at a time per channel and reports Twitch's answer
as a ``SendOutcome``: ``sent`` with the id Twitch gave it, ``dropped`` with Twitch's reason
(a NOTICE msg-id, a Helix ``drop_reason.code``), ``failed`` (it certainly did not reach
chat: nothing was written, or Twitch refused the request itself) or ``unknown`` (it may
have: no answer in time, the connection broke after the write). Nothing is ever sent
twice by a transport after it may have reached Twitch.

What a transport learns about the bot's role and a channel's modes goes into the shared
``ChannelStates`` it is given, before it reports the answer that carried it, so the
sender's next decision for that channel already sees it.

``SenderClock``: every time here is epoch seconds from one clock (the limiter's, the
ledger's); ``rate`` lets a test run that clock faster than real time (virtual seconds per
real second), so a 30 s window passes in a fraction of it, the same for the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

SendStatus = Literal["sent", "dropped", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """Twitch's answer to one message. ``answered_at``: when it came (or the transport
    gave up), on the sender's clock; the limiter counts the message from then."""

    status: SendStatus
    answered_at: float
    twitch_message_id: str | None = None
    reason: str | None = None  # Twitch's code for a drop; ours for failed/unknown
    detail: str | None = None  # for people: Twitch's text, the error
    written: bool = True  # False: nothing reached the wire (it cannot count at Twitch)


@dataclass(frozen=True)
class SenderClock:
    """Epoch seconds (``now``) and how to wait on them (``rate`` virtual s per real s)."""

    now: Callable[[], float] = time.time
    rate: float = 1.0

    def real_seconds(self, seconds: float) -> float:
        return max(0.0, seconds) / self.rate

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(seconds))

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for ``event`` at most ``seconds`` (clock seconds); True if it was set."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), self.real_seconds(seconds))
            return True
        return False


@dataclass
class ScaledClock:
    """A clock running ``rate`` times faster than real time from ``start`` (tests)."""

    rate: float
    start: float = field(default_factory=time.time)
    _real_start: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return self.start + (time.monotonic() - self._real_start) * self.rate

    def monotonic(self) -> float:
        """The same clock as monotonic seconds (for a referee that wants those)."""
        return (time.monotonic() - self._real_start) * self.rate

    def sender_clock(self) -> SenderClock:
        return SenderClock(self, self.rate)


class ChatTransport(Protocol):
    """One way of sending as the bot. ``send`` is called with at most one message in
    flight per channel (the sender guarantees it); different channels run in parallel."""

    name: str  # "irc" | "helix"

    async def connect(self) -> None:
        """Log in / check the token; raises ``TransportError`` when it cannot (yet)."""

    async def close(self) -> None: ...

    async def prepare(self, channel: str, channel_id: str | None) -> SendOutcome | None:
        """Get ready to send to ``channel`` (IRC: JOIN and learn its state). None when
        ready; else the outcome for the command (e.g. the channel is suspended)."""

    async def send(
        self,
        channel: str,
        part: str,
        reply_to: str | None,
        is_action: bool,
        *,
        channel_id: str | None = None,
    ) -> SendOutcome:
        """Send one prepared part (at most 500 code points, no control characters) and
        wait for Twitch's answer. Never raises for Twitch or network trouble."""

    @property
    def connected(self) -> bool: ...

    def describe(self) -> dict[str, Any]:
        """Non-secret state for ``/_debug/twitch``."""


class TransportError(Exception):
    """The transport cannot log in or reach Twitch now; ``reason`` says why (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
