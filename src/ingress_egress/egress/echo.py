"""Echo confirmation: each message the bot sent to a channel the service reads should come
back in that channel's chat, with the Twitch message id the send was answered with.

Twitch drops some messages silently (lockouts, spam filters): the send looks accepted, yet
nobody sees it. Where the service reads the channel, its read side sees the bot's own
messages (``payload.isSelf``; the IRC and EventSub sources hand their ids to an
``on_self_message`` callback), so a sent id that never comes back within
``EGRESS_ECHO_TIMEOUT_MS`` is counted, logged and alertable as unseen.

``EchoWatch`` is pure bookkeeping on an injected clock (monotonic seconds): the sender calls
``expect`` after each send Twitch answered with an id, the read side ``on_self_message``
(``seen``), and a periodic task ``sweep``. Memory is bounded: at most ``capacity`` sends are
watched (past it the oldest is given up, counted as ``evicted``), and the ids seen before
their send was recorded (the echo can overtake the answer to the send) or after it was
given up are remembered for one timeout, at most ``capacity`` of them.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("ingress_egress.egress")

DEFAULT_TIMEOUT_MS = 10_000  # EGRESS_ECHO_TIMEOUT_MS
DEFAULT_CAPACITY = 10_000  # 40 s of a verified bot's 7,500 messages per 30 s


@dataclass(frozen=True, slots=True)
class Unseen:
    """A sent message whose echo did not come back in time."""

    message_id: str
    channel: str
    sent_at: float  # the clock's time of ``expect``


def channel_login(channel: str) -> str:
    """``"#Forsen"`` -> ``"forsen"``: a read channel and a command's target compare equal."""
    return channel.strip().lstrip("#").lower()


class EchoWatch:
    def __init__(
        self,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        channels: Iterable[str] = (),
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``channels``: those the service reads (only sends to them are watched; the
        composition root updates them with ``set_channels``)."""
        if timeout_ms < 1 or capacity < 1:
            raise ValueError("timeout_ms and capacity must be >= 1")
        self.timeout_s = timeout_ms / 1000
        self.capacity = capacity
        self._clock = clock
        self._channels: frozenset[str] = frozenset()
        self.set_channels(channels)
        self._pending: OrderedDict[str, Unseen] = OrderedDict()  # by expect time
        # Ids seen with no pending send (early echoes, late ones): id -> when, by time.
        self._seen_alone: OrderedDict[str, float] = OrderedDict()
        self._given_up: OrderedDict[str, float] = OrderedDict()  # unseen or evicted ids
        self.confirmed = 0
        self.unseen = 0
        self.late = 0  # seen after being counted unseen (or evicted)
        self.evicted = 0  # given up unswept: more than ``capacity`` sends pending
        self.unwatched = 0  # sends to channels the service does not read
        self.last_unseen: Unseen | None = None

    def set_channels(self, channels: Iterable[str]) -> None:
        """The channels the service reads now; sends already watched stay watched."""
        self._channels = frozenset(channel_login(channel) for channel in channels)

    def watches(self, channel: str) -> bool:
        return channel_login(channel) in self._channels

    def expect(self, message_id: str, channel: str, at: float | None = None) -> bool:
        """A send Twitch answered with ``message_id``: watch for its echo. False when it is
        not watched (a channel the service does not read, or no id)."""
        login = channel_login(channel)
        if not message_id or login not in self._channels:
            self.unwatched += 1
            return False
        now = self._clock() if at is None else at
        if self._seen_alone.pop(message_id, None) is not None:
            self.confirmed += 1  # the echo overtook the answer to the send
            return True
        if message_id in self._pending:
            return True  # recorded twice: one send
        self._pending[message_id] = Unseen(message_id, login, now)
        if len(self._pending) > self.capacity:
            oldest, _ = self._pending.popitem(last=False)
            self.evicted += 1
            self._remember(self._given_up, oldest, now)
        return True

    def seen(self, message_id: str) -> bool:
        """The read side saw the bot's own message ``message_id``; True when it confirms a
        watched send. Seeing an id twice (two connections during a reconnect) is harmless."""
        if self._pending.pop(message_id, None) is not None:
            self.confirmed += 1
            return True
        if self._given_up.pop(message_id, None) is not None:
            self.late += 1
            return False
        self._remember(self._seen_alone, message_id, self._clock())
        return False

    def on_self_message(self, channel: str, message_id: str) -> None:
        """``seen`` in the shape of the sources' ``on_self_message`` callback."""
        self.seen(message_id)

    def sweep(self, now: float | None = None) -> list[Unseen]:
        """The watched sends not seen within the timeout, now counted as unseen (and
        logged); forgets what is older than one timeout."""
        now = self._clock() if now is None else now
        deadline = now - self.timeout_s
        expired: list[Unseen] = []
        pending = self._pending
        while pending:
            first = next(iter(pending.values()))
            if first.sent_at > deadline:
                break
            pending.popitem(last=False)
            expired.append(first)
            self._remember(self._given_up, first.message_id, now)
        for memory in (self._seen_alone, self._given_up):
            while memory and next(iter(memory.values())) <= deadline:
                memory.popitem(last=False)
        if expired:
            self.unseen += len(expired)
            self.last_unseen = expired[-1]
            log.warning(
                "egress: %d sent message(s) not seen in chat within %.1f s (last: %s in #%s)",
                len(expired),
                self.timeout_s,
                expired[-1].message_id,
                expired[-1].channel,
            )
        return expired

    def describe(self) -> dict[str, Any]:
        """For ``/_debug/twitch``: counts, and the last unseen send."""
        last = self.last_unseen
        return {
            "timeoutMs": round(self.timeout_s * 1000),
            "watchedChannels": len(self._channels),
            "pending": len(self._pending),
            "remembered": len(self._seen_alone) + len(self._given_up),  # ids, for one timeout
            "confirmed": self.confirmed,
            "unseen": self.unseen,
            "late": self.late,
            "evicted": self.evicted,
            "unwatched": self.unwatched,
            "lastUnseen": None
            if last is None
            else {
                "messageId": last.message_id,
                "channel": last.channel,
                "secondsAgo": round(max(0.0, self._clock() - last.sent_at), 1),
            },
        }

    def _remember(self, memory: OrderedDict[str, float], message_id: str, at: float) -> None:
        memory[message_id] = at
        memory.move_to_end(message_id)
        if len(memory) > self.capacity:
            memory.popitem(last=False)
