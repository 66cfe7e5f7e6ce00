"""The chat firehose: generated (or replayed) PRIVMSG batches written to whoever joined.

One task (``run``) takes batches round-robin over the joined channels at ``rate`` msg/s (or
as fast as the sockets take them), writes each batch to every subscribed connection with one
write per connection, and records what at least one connection got. A message nobody could
take (its only reader hit a fault budget) waits and goes to the next reader of its channel.
This is the benchmarks' path: keep it free of anything per message that it does not need.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NamedTuple

from ingress_egress.simulator.faults import Faults
from ingress_egress.simulator.hub import (
    CLOSE_ERRORS,
    SERVER,
    ChatLog,
    Connection,
    Hub,
    without_tags,
)
from ingress_egress.simulator.traffic import TrafficGenerator, room_id_for

PING_TEXT = "!ping"  # what a viewer says for the demo's round trip

# Paced output is written at most this often: ~5 messages a write at 5,000 msg/s, close to a
# steady stream (Twitch writes each message as it comes) without a syscall per message.
PACE_TICK_S = 0.001


class Message(NamedTuple):
    """One chat event line queued for the clients of ``channel``."""

    channel: str  # routing channel login (no '#')
    line: str  # without CRLF, with tags
    msg_id: str
    text: str
    retarget: bool  # replayed line: may go to whichever channel is joined


def replay_message(line: str) -> Message:
    """Routing channel, id tag and trailing text of a raw replay line."""
    line = line.rstrip("\r\n")
    msg_id = ""
    rest = line
    if line.startswith("@"):
        tags, _, rest = line.partition(" ")
        for tag in tags[1:].split(";"):
            if tag.startswith("id="):
                msg_id = tag[3:]
                break
    if rest.startswith(":"):
        rest = rest.partition(" ")[2]
    head, sep, text = rest.partition(" :")
    channel = next((p[1:].lower() for p in head.split()[1:] if p.startswith("#")), "")
    return Message(channel, line, msg_id, text if sep else "", True)


Spawn = Callable[[Coroutine[Any, Any, None], str], None]


class Firehose:
    """Generated or replayed chat for whoever joined (see the module docstring)."""

    def __init__(
        self,
        hub: Hub,
        log: ChatLog,
        generator: TrafficGenerator,
        faults: Faults,
        spawn: Spawn,
        *,
        rate: float | None,
        count: int | None,
        batch_size: int,
        prebuilt: bool,
        replay_lines: Sequence[str] | None,
        viewer_pings_every: int | None = None,
    ) -> None:
        self.hub = hub
        self.log = log
        self.generator = generator
        self.faults = faults
        self._spawn = spawn
        self.rate = rate
        self.count = count
        self.batch_size = batch_size
        self.prebuilt = prebuilt
        self.viewer_pings_every = viewer_pings_every
        self.paused = False
        self.stopping = False
        self._rr = 0
        self._generated = 0
        self._pending: deque[Message] = deque()
        self._prepared: deque[tuple[list[Message], bytes]] | None = None
        self._replay: deque[Message] | None = None
        if replay_lines is not None:
            self._replay = deque(
                replay_message(line) for line in replay_lines if line.strip("\r\n")
            )

    @property
    def finished(self) -> bool:
        if self.count is not None and self.log.count >= self.count:
            return True
        return self._replay is not None and not self._replay and not self._pending

    def can_emit(self) -> bool:
        return not self.paused and not self.stopping and bool(self.hub.subs)

    async def run(self) -> None:
        """Emit until ``count`` (or the replay) is done; waits while nobody listens."""
        loop = asyncio.get_running_loop()
        base_time: float | None = None
        base_count = 0
        while not self.finished:
            if not self.can_emit():
                base_time = None
                await self.hub.changed.wait()
                continue
            n = self.batch_size
            if self.count is not None:
                n = min(n, self.count - self.log.count)
            rate = self.rate
            if rate is not None:
                now = loop.time()
                if base_time is None:
                    base_time, base_count = now, 0
                due = int((now - base_time) * rate) + 1 - base_count
                if due <= 0:
                    wait = (base_count - (now - base_time) * rate) / rate
                    await asyncio.sleep(max(PACE_TICK_S, wait))
                    continue
                if due > max(rate, self.batch_size) * 2:  # far behind: don't burst to catch up
                    base_time, base_count, due = now, 0, 1
                n = min(n, due)
            if self.prebuilt:
                batch, data = self._take_prepared()
            else:
                batch, data = self._take(n), None
            if not batch:
                await asyncio.sleep(0)  # nothing routable (stale replay/pending): try again
                continue
            base_count += len(batch)
            await self._deliver(batch, data)
            self.hub.notify()
            await asyncio.sleep(0)  # let client commands (PING, JOIN, ...) in between batches
        self.hub.notify()

    def _take_pending(self, n: int) -> list[Message]:
        """Up to ``n`` messages no client could take before: first in line, per channel in
        their old order. Generated ones wait for their channel to be joined again."""
        subs = self.hub.subs
        channels = list(subs)
        out: list[Message] = []
        pending, waiting = self._pending, deque[Message]()
        while pending and len(out) < n:
            msg = pending.popleft()
            if msg.channel in subs:
                out.append(msg)
            elif msg.retarget:
                out.append(msg._replace(channel=channels[self._rr % len(channels)]))
                self._rr += 1
            else:
                waiting.append(msg)
        waiting.extend(pending)
        self._pending = waiting
        return out

    def _take(self, n: int) -> list[Message]:
        subs = self.hub.subs
        channels = list(subs)
        out = self._take_pending(n) if self._pending else []
        replay = self._replay
        if replay is not None:
            while replay and len(out) < n:
                msg = replay.popleft()
                if msg.channel not in subs:
                    msg = msg._replace(channel=channels[self._rr % len(channels)])
                    self._rr += 1
                out.append(msg)
            return out
        need = n - len(out)
        if need <= 0:
            return out
        first = len(out)
        ts = time.time_ns() // 1_000_000
        self._generate(out, need, channels, ts)
        if self.viewer_pings_every is not None:
            self._mix_in_pings(out, first, ts)
        return out

    def _generate(self, out: list[Message], need: int, channels: list[str], ts: int) -> None:
        """Append ``need`` generated messages, round-robin over ``channels``."""
        gen = self.generator
        if len(channels) == 1:
            channel = channels[0]
            out += [
                Message(channel, line, msg_id, text, False)
                for line, msg_id, text in gen.messages(channel, need, room_id_for(channel), ts)
            ]
            return
        rr, k = self._rr, len(channels)
        order = [channels[(rr + i) % k] for i in range(need)]
        counts = dict.fromkeys(order, 0)
        for channel in order:
            counts[channel] += 1
        streams = {
            channel: iter(gen.messages(channel, c, room_id_for(channel), ts))
            for channel, c in counts.items()
        }
        for channel in order:
            line, msg_id, text = next(streams[channel])
            out.append(Message(channel, line, msg_id, text, False))
        self._rr = (rr + need) % k

    def _mix_in_pings(self, out: list[Message], first: int, ts: int) -> None:
        """Every Nth generated message becomes a viewer saying ``!ping`` (the demo's cue)."""
        every = self.viewer_pings_every
        assert every is not None
        for i in range(first, len(out)):
            self._generated += 1
            if self._generated % every == 0:
                channel = out[i].channel
                line, msg_id = self.generator.says(channel, PING_TEXT, ts)
                out[i] = Message(channel, line, msg_id, PING_TEXT, False)

    def _take_prepared(self) -> tuple[list[Message], bytes | None]:
        """The next prebuilt batch with its tagged wire form (the whole rest of ``count`` is
        built on the first call). Messages left pending by a fault come first, as usual."""
        if self._pending:
            return self._take_pending(self.batch_size), None
        if self._prepared is None:
            prepared: deque[tuple[list[Message], bytes]] = deque()
            assert self.count is not None  # prebuilt needs a count (checked in __init__)
            left = self.count - self.log.count
            while left > 0:
                batch = self._take(min(self.batch_size, left))
                prepared.append((batch, ("\r\n".join(m.line for m in batch) + "\r\n").encode()))
                left -= len(batch)
            self._prepared = prepared
        if not self._prepared:
            return [], None
        return self._prepared.popleft()

    async def _deliver(self, batch: list[Message], tagged: bytes | None = None) -> None:
        """Write ``batch`` to every subscribed client; record what at least one client got.
        ``tagged``: the batch's wire form with tags, when it was prebuilt."""
        batch_channels = {m.channel for m in batch}
        targets: set[Connection] = set()
        for channel in batch_channels:
            targets |= self.hub.subs.get(channel, set())
        delivered = [False] * len(batch)
        n_delivered = 0
        full: dict[bool, bytes] = {} if tagged is None else {True: tagged}
        for client in sorted(targets, key=lambda c: c.index):
            if not client.receiving:
                continue
            if batch_channels <= client.channels:
                picked = list(range(len(batch)))
            else:
                picked = [i for i, m in enumerate(batch) if m.channel in client.channels]
            if client.budget is not None:
                picked = picked[: client.budget]
            if not picked:
                continue
            tags = client.tags
            if len(picked) == len(batch):
                data = full.get(tags)
                if data is None:
                    lines = (
                        [m.line for m in batch] if tags else [without_tags(m.line) for m in batch]
                    )
                    data = full[tags] = ("\r\n".join(lines) + "\r\n").encode()
            else:
                lines = [batch[i].line for i in picked]
                if not tags:
                    lines = [without_tags(line) for line in lines]
                data = ("\r\n".join(lines) + "\r\n").encode()
            try:
                await client.transport.send(data)
            except CLOSE_ERRORS:
                self.hub.unsubscribe(client)
                continue
            for i in picked:
                if not delivered[i]:
                    delivered[i] = True
                    n_delivered += 1
            if client.budget is not None:
                client.budget -= len(picked)
                if client.budget <= 0:
                    self._fire_fault(client)

        if n_delivered == len(batch):
            done = batch
        else:
            done = [m for m, ok in zip(batch, delivered, strict=True) if ok]
            self._pending.extendleft(
                reversed([m for m, ok in zip(batch, delivered, strict=True) if not ok])
            )
        self.log.count += len(done)
        if self.log.record:
            sent = self.log.sent
            if len(batch_channels) == 1:
                (channel,) = batch_channels
                sent.setdefault(channel, []).extend([(m.msg_id, m.text) for m in done])
            else:
                for m in done:
                    sent.setdefault(m.channel, []).append((m.msg_id, m.text))

    def _fire_fault(self, client: Connection) -> None:
        if client.fault == "reconnect" and self.faults.reconnect_overlap:
            client.budget = None  # chat keeps flowing until the connection closes
            self._spawn(self._reconnect(client), f"chat-simulator-reconnect-{client.index}")
            return
        self.hub.unsubscribe(client)
        if client.fault == "drop":
            self._spawn(client.transport.close(abrupt=True), f"chat-simulator-drop-{client.index}")
        else:
            self._spawn(self._reconnect(client), f"chat-simulator-reconnect-{client.index}")

    async def _reconnect(self, client: Connection) -> None:
        with contextlib.suppress(*CLOSE_ERRORS):
            await client.write([f":{SERVER} RECONNECT"])
            await asyncio.sleep(self.faults.reconnect_close_delay)
        self.hub.unsubscribe(client)
        await client.transport.close()
