"""Live mode: chat for a fixed set of channels, produced on the clock whether or not anyone
listens, as on Twitch; what nobody was joined for is gone.

Every Nth message (``events_every``) is, in turn, a USERNOTICE sub, a CLEARCHAT timeout and a
CLEARMSG; every Mth chat message (``viewer_pings_every``) is a viewer saying ``!ping`` (the
demo's round trip answers it).
"""

from __future__ import annotations

import asyncio
import time
from typing import NamedTuple

from ingress_egress.simulator.firehose import PING_TEXT
from ingress_egress.simulator.hub import CLOSE_ERRORS, ChatLog, Connection, Hub, without_tags
from ingress_egress.simulator.traffic import TrafficGenerator, clearmsg_line, room_id_for

# Chat is produced on this tick whether or not anyone listens; a client whose socket takes no
# more within LIVE_SEND_TIMEOUT_S is dropped, as Twitch drops slow readers, so one stalled
# client cannot stop the clock for the others.
LIVE_TICK_S = 0.005
LIVE_SEND_TIMEOUT_S = 1.0
LIVE_EVENTS = ("USERNOTICE", "CLEARCHAT", "CLEARMSG")


class LiveMessage(NamedTuple):
    """One event the live stream produced, and how many connections it was written to."""

    id: str  # the id tag (PRIVMSG, USERNOTICE), else the event's target (user or message id)
    channel: str  # login, no '#'
    command: str  # PRIVMSG, USERNOTICE, CLEARCHAT or CLEARMSG
    line: str  # as written to tagged connections, without CRLF
    receivers: int  # live connections joined to the channel that were written the line
    at: float  # time.monotonic() when it was produced


class _Produced(NamedTuple):
    channel: str
    command: str
    id: str
    line: str
    text: str


class LiveStream:
    """The clock-driven producer (see the module docstring)."""

    def __init__(
        self,
        hub: Hub,
        log: ChatLog,
        generator: TrafficGenerator,
        channels: tuple[str, ...],
        *,
        rate: float,
        count: int | None,
        batch_size: int,
        events_every: int | None,
        viewer_pings_every: int | None,
    ) -> None:
        self.hub = hub
        self.log = log
        self.generator = generator
        self.channels = channels
        self.rate = rate
        self.count = count
        self.batch_size = batch_size
        self.events_every = events_every
        self.viewer_pings_every = viewer_pings_every
        self.entries: list[LiveMessage] = []
        self.produced = 0
        self.unheard_count = 0
        self.stopped = False
        self.paused = False
        self.stopping = False
        self._chat_seq = 0
        self._last_privmsg: dict[str, tuple[str, str, str]] = {}  # channel -> (id, login, text)
        self._event_ts: dict[str, int] = {}  # channel -> last event tmi-sent-ts (kept unique)

    @property
    def finished(self) -> bool:
        return self.count is not None and self.produced >= self.count

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        rate = self.rate
        base: float | None = None
        produced = 0
        while not self.finished and not self.stopped:
            if self.paused or self.stopping:
                base = None  # resume starts the clock afresh: a pause produces nothing
                await self.hub.changed.wait()
                continue
            now = loop.time()
            if base is None:
                base, produced = now, 0
            due = int((now - base) * rate) + 1 - produced
            if due > max(rate, self.batch_size) * 2:  # far behind (a stalled loop): no burst
                base, produced, due = now, 0, 1
            if self.count is not None:
                due = min(due, self.count - self.produced)
            if due > 0:
                due = min(due, self.batch_size)
                await self._produce(due)
                produced += due
                self.hub.notify()
            await asyncio.sleep(LIVE_TICK_S)
        self.hub.notify()

    def _next(self, ts: int) -> _Produced:
        """Chat goes round-robin over the channels; events (every Nth message) in turn, each
        round of the three kinds to the next channel, so every channel gets chat and every
        kind."""
        seq = self.produced
        self.produced = seq + 1
        channels = self.channels
        every = self.events_every
        events = 0 if every is None else (seq + 1) // every
        if every is not None and (seq + 1) % every == 0:
            n = events - 1
            channel = channels[n // len(LIVE_EVENTS) % len(channels)]
            return self._event(channel, LIVE_EVENTS[n % len(LIVE_EVENTS)], ts)
        channel = channels[(seq - events) % len(channels)]
        self._chat_seq += 1
        if self.viewer_pings_every is not None and self._chat_seq % self.viewer_pings_every == 0:
            line, msg_id = self.generator.says(channel, PING_TEXT, ts)
            text = PING_TEXT
        else:
            line, msg_id, text = self.generator.messages(channel, 1, room_id_for(channel), ts)[0]
        login = line.partition(" :")[2].partition("!")[0]
        self._last_privmsg[channel] = (msg_id, login, text)
        return _Produced(channel, "PRIVMSG", msg_id, line, text)

    def _event(self, channel: str, kind: str, ts: int) -> _Produced:
        # Strictly increasing per channel, so (room, tmi-sent-ts, target) never repeats.
        ts = max(ts, self._event_ts.get(channel, 0) + 1)
        self._event_ts[channel] = ts
        gen = self.generator
        if kind == "USERNOTICE":
            line, msg_id = gen.sub(channel, ts)
            return _Produced(channel, kind, msg_id, line, "")
        if kind == "CLEARCHAT":
            line, target = gen.timeout(channel, ts)
            return _Produced(channel, kind, target, line, "")
        target, login, text = self._last_privmsg.pop(channel, ("", "", ""))
        if not target:  # nothing said here yet: a message deleted before we saw it
            target, login, text = gen.new_id(), "viewer", "deleted"
        line = clearmsg_line(channel, login, target, text, ts)
        return _Produced(channel, kind, target, line, text)

    async def _produce(self, n: int) -> None:
        ts = time.time_ns() // 1_000_000
        at = time.monotonic()
        batch = [self._next(ts) for _ in range(n)]
        receivers = [0] * n
        targets: set[Connection] = set()
        for channel in {m.channel for m in batch}:
            targets |= self.hub.subs.get(channel, set())
        for client in sorted(targets, key=lambda c: c.index):
            for i in await self._send(client, batch):
                receivers[i] += 1
        self._record(batch, receivers, at)

    async def _send(self, client: Connection, batch: list[_Produced]) -> list[int]:
        """Write the client's share of ``batch``; the indices it was written. Membership is
        read here, not when the batch was made: a PART that came in meanwhile counts."""
        if not client.receiving:
            return []
        picked = [i for i, m in enumerate(batch) if m.channel in client.channels]
        if not picked:
            return []
        lines = [batch[i].line for i in picked]
        if not client.tags:
            lines = [without_tags(line) for line in lines]
        try:
            async with asyncio.timeout(LIVE_SEND_TIMEOUT_S):
                await client.transport.send(("\r\n".join(lines) + "\r\n").encode())
        except CLOSE_ERRORS:
            self.hub.unsubscribe(client)
            return []
        except TimeoutError:  # a client that does not read: dropped, what it had is lost
            self.hub.unsubscribe(client)
            client.transport.abort()
            return []
        return picked

    def _record(self, batch: list[_Produced], receivers: list[int], at: float) -> None:
        heard = 0
        record = self.log.record
        for m, got in zip(batch, receivers, strict=True):
            if got:
                heard += 1
                if record:
                    self.log.sent.setdefault(m.channel, []).append((m.id, m.text))
            if record:
                self.entries.append(LiveMessage(m.id, m.channel, m.command, m.line, got, at))
        self.log.count += heard
        self.unheard_count += len(batch) - heard
