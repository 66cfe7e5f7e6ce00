"""Twitch's send limits for one bot identity, as a pure object on an injected clock.

Rules (dev.twitch.tv/docs/chat, "Rate limits"; docs/egress.md explains each choice):

* **The window, all channels together.** A message to a channel where the bot is not
  privileged (broadcaster, moderator, VIP) may go only while fewer than ``rate_limit`` (20)
  of its messages are in the window; to a privileged one, fewer than ``privileged_rate_limit``
  (100). Verified bots: both 7,500.
* **Per channel, when not privileged:** at least ``max(channel_interval_s, slow)`` between
  two messages (1 s; the ROOMSTATE's ``slow`` seconds in slow mode), plus ``channel_margin_s``.

Twitch counts a message when it *receives* it; only the sender's side is visible here. So a
send counts from the moment it is issued (``record``) and, once Twitch answered (``settle``),
from the answer's time: Twitch cannot have received it later than it answered, so measuring
the next message from there is never too early, whatever the network did in between. While
a message to a non-privileged channel is unanswered, every send is held to the lower limit:
a later one may overtake it (parallel Helix requests) and Twitch would count it first. The
window is ``window_s`` + ``margin_s`` long for what remains (clocks of two members after a
takeover, Twitch's own bookkeeping). All times are epoch seconds, so that sends inherited
from another member (``restore``) line up with ours.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

TWITCH_WINDOW_S = 30.0


@dataclass(frozen=True, slots=True)
class RecentSend:
    """One message sent for the identity: its channel and when it counts from.

    ``settled`` False: no answer was recorded (the holder died with it in flight); it may
    have reached Twitch at any moment up to the holder's end, so ``restore`` counts it from
    the takeover."""

    channel: str
    at: float
    settled: bool = True


class SendLimiter:
    """When the bot's next message to a channel may go; what it sent, as Twitch may count it."""

    def __init__(
        self,
        *,
        rate_limit: int = 20,
        privileged_rate_limit: int = 100,
        window_s: float = TWITCH_WINDOW_S,
        margin_s: float = 2.0,
        channel_interval_s: float = 1.0,
        channel_margin_s: float = 0.1,
    ) -> None:
        if rate_limit < 1 or privileged_rate_limit < rate_limit:
            raise ValueError("need 1 <= rate_limit <= privileged_rate_limit")
        self.rate_limit = rate_limit
        self.privileged_rate_limit = privileged_rate_limit
        self.window_s = window_s + margin_s  # the window as measured here
        self.channel_interval_s = channel_interval_s
        self.channel_margin_s = channel_margin_s
        self._settled: list[float] = []  # ascending: when each answered send counts from
        self._in_flight: dict[str, float] = {}  # channel -> when its unanswered send went
        self._unprivileged_in_flight: set[str] = set()
        self._last: dict[str, float] = {}  # channel -> its latest send (either kind)

    def next_allowed(self, channel: str, privileged: bool, slow_s: float, now: float) -> float:
        """The earliest time >= ``now`` a message to ``channel`` may go.

        While unanswered sends fill the window the answer is a lower bound (they count from
        their answers, still to come): ask again once they are settled.
        """
        self._forget(now)
        lower = not privileged or bool(self._unprivileged_in_flight)
        limit = self.rate_limit if lower else self.privileged_rate_limit
        allowed = max(now, self._window_opens(limit, now))
        if not privileged:
            allowed = max(allowed, self._channel_opens(channel, slow_s, now))
        return allowed

    def _window_opens(self, limit: int, now: float) -> float:
        in_window = len(self._in_flight) + len(self._settled)
        if in_window < limit:
            return now
        leaving = in_window - limit  # this many more must leave, oldest first
        if leaving < len(self._settled):
            return self._settled[leaving] + self.window_s
        return now + self.window_s  # unanswered sends leave no earlier than this

    def _channel_opens(self, channel: str, slow_s: float, now: float) -> float:
        last = now if channel in self._in_flight else self._last.get(channel)
        if last is None:
            return now
        return last + max(self.channel_interval_s, slow_s) + self.channel_margin_s

    def record(self, channel: str, at: float, *, privileged: bool = False) -> None:
        """A message to ``channel`` was issued at ``at`` (it counts until ``settle``);
        ``privileged``: as passed to ``next_allowed`` for it."""
        if channel in self._in_flight:  # the caller forgot to settle: count both
            self.settle(channel, at)
        self._in_flight[channel] = at
        if not privileged:
            self._unprivileged_in_flight.add(channel)
        self._last[channel] = at

    def settle(self, channel: str, at: float) -> None:
        """Twitch answered ``channel``'s message at ``at`` (or the sender gave up waiting
        then): from now on it counts from ``at``."""
        issued = self._in_flight.pop(channel, None)
        self._unprivileged_in_flight.discard(channel)
        if issued is None:
            return
        counted = max(issued, at)
        bisect.insort(self._settled, counted)
        self._last[channel] = max(self._last.get(channel, counted), counted)

    def restore(self, sends: Iterable[RecentSend], now: float) -> None:
        """Count sends made by a previous holder of the identity (a cluster takeover)."""
        for send in sends:
            counted = send.at if send.settled else max(send.at, now)
            bisect.insort(self._settled, counted)
            self._last[send.channel] = max(self._last.get(send.channel, counted), counted)
        self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop what left the window; per-channel times older than any gap that could
        still apply (slow mode is at most 120 s on Twitch; kept longer to be safe)."""
        cut = bisect.bisect_right(self._settled, now - self.window_s)
        if cut:
            del self._settled[:cut]
        if len(self._last) > 4096:
            horizon = now - 3600.0
            self._last = {c: t for c, t in self._last.items() if t > horizon}

    def in_window(self, now: float) -> int:
        """Messages that count in the window at ``now`` (answered or not)."""
        self._forget(now)
        return len(self._settled) + len(self._in_flight)

    def snapshot(self, now: float) -> dict[str, Any]:
        """For ``/_debug/twitch``: the window's count against both limits."""
        count = self.in_window(now)
        return {
            "windowSeconds": self.window_s,
            "inWindow": count,
            "inFlight": len(self._in_flight),
            "limit": self.rate_limit,
            "remaining": max(0, self.rate_limit - count),
            "privilegedLimit": self.privileged_rate_limit,
            "privilegedRemaining": max(0, self.privileged_rate_limit - count),
        }
