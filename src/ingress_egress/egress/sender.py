"""The egress sender: commands from the bus -> messages in Twitch chat -> one result each.

For each delivery from the ``CommandSource``:

1. **Read it.** Unreadable: dead-lettered with the reason, then acked. Invalid: answered
   ``dropped``/``invalid`` (or ``too_long``), never sent.
2. **Known already?** A second delivery of a command pending here joins it (both are
   settled with its one result). A command the ledger knows is answered from there
   (``prior_outcome``: its recorded outcome, or ``unknown`` when it was started and never
   finished) and never sent again.
3. **Its channel's queue.** Each channel has a FIFO and a worker with one message in
   flight; channels run in parallel, so a slow channel (slow mode, a lost answer) holds
   only itself. The shared ``SendLimiter`` decides when each part may go, from what the
   transport learned (``ChannelStates``: privileged, slow mode).
4. **Its turn:** ``ledger.begin`` (an existing record: answered from it, not sent), then
   expiry (``EGRESS_MAX_AGE_MS``, checked again right before the first part goes), the
   text (split, neutralised; ``too_long`` under ``drop``), the channel (IRC: JOIN), and
   each part: wait for the limiter, make a repeat distinct (or drop it), send, wait for
   Twitch's answer, record the part in the ledger. The outcome goes to the ledger.
5. **Result, then ack.** The result is published and acknowledged by the bus before the
   command is acked. Nothing captures the destination (``DestinationMissing``): the
   command is nak'ed with a delay and comes back; the ledger answers it then, so Twitch
   never sees it twice. Any other bus trouble: the same.

Commands waiting here are kept alive on the bus (``in_progress``) so the bus does not
redeliver them meanwhile. ``stop`` leaves unsettled commands to the bus (redelivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from ingress_egress.bus.base import BusError
from ingress_egress.bus.egress_protocol import (
    CommandSource,
    DestinationMissing,
    ReceivedCommand,
    ResultPublisher,
)
from ingress_egress.egress.channel_state import ChannelStates
from ingress_egress.egress.command import (
    EgressCommand,
    InvalidCommand,
    UnreadableCommand,
    decode_command,
)
from ingress_egress.egress.expiry import expired_outcome, is_expired
from ingress_egress.egress.ledger import (
    Ledger,
    LedgerRecord,
    LedgerUnavailable,
    SentPart,
    prior_outcome,
)
from ingress_egress.egress.limits import SendLimiter
from ingress_egress.egress.repeats import (
    DUPLICATE_REASON,
    RepeatPolicy,
    RepeatRefused,
    avoid_repeat,
)
from ingress_egress.egress.result import (
    EgressResult,
    Outcome,
    iso_time,
    result_for,
    result_for_invalid,
)
from ingress_egress.egress.sender_stats import SenderStats
from ingress_egress.egress.text import LongText, PreparedText, TextTooLong, prepare_text
from ingress_egress.egress.transport import (
    ChatTransport,
    SenderClock,
    SendOutcome,
    TransportError,
)

log = logging.getLogger("ingress_egress.egress.sender")

TOO_LONG_REASON = "too_long"
LEDGER_REASON = "ledger_unavailable"
LEASE_REASON = "lease_lost"  # the send lease ended before this message went out


@dataclass(frozen=True)
class SenderSettings:
    """How the sender behaves (the integrator maps the ``EGRESS_*`` variables here)."""

    bus_prefix: str = ""
    identity: str = ""  # the bot's login, for describe()
    holder: str = "ingress-egress"  # who starts ledger records (instance / member name)
    fence: int = 0  # the lease's fencing token in cluster mode
    max_age_s: float = 120.0  # EGRESS_MAX_AGE_MS / 1000
    long_text: LongText = "split"  # EGRESS_LONG_TEXT
    repeat: RepeatPolicy = "distinct"  # EGRESS_REPEAT
    max_pending: int = 500  # commands held here at most (fetched only when there is room)
    fetch_batch: int = 50
    fetch_timeout_s: float = 1.0
    progress_interval_s: float = 10.0  # in_progress for waiting commands (< the ack wait)
    missing_destination_delay_s: float = 5.0  # nak delay while nothing captures a result
    retry_delay_s: float = 2.0  # nak delay after other bus or ledger trouble


@dataclass
class PendingCommand:
    command: EgressCommand
    deliveries: list[ReceivedCommand]
    queued_at: float
    state: str = "queued"  # queued | waiting | sending | answering


@dataclass
class _Channel:
    queue: deque[PendingCommand] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None


class EgressSender:
    """Consumes ``internal.egress.v1`` and sends through ``transport`` within the limits.

    ``start`` starts the ledger, the result publisher, the command source and the
    transport (a transport that cannot log in yet keeps trying; commands wait for it up to
    its own timeouts, then ``failed``), restores the limiter from the ledger's recent
    sends, and consumes until ``stop``.
    """

    def __init__(
        self,
        source: CommandSource,
        results: ResultPublisher,
        transport: ChatTransport,
        ledger: Ledger,
        channels: ChannelStates,
        limiter: SendLimiter,
        settings: SenderSettings | None = None,
        *,
        clock: SenderClock | None = None,
        stats: SenderStats | None = None,
        may_send: Callable[[], bool] = lambda: True,
        on_sent: Callable[[str, str], object] | None = None,
    ) -> None:
        """``stats``: counters that outlive this sender (a new term of the lease builds a
        new sender; the figures go on). ``may_send``: the send lease, asked right before a
        command starts and before each message goes out (in a cluster another member may
        be about to take over). ``on_sent(message_id, channel)``: each message Twitch took
        (echo confirmation)."""
        self._may_send = may_send
        self._on_sent = on_sent
        self.source = source
        self.results = results
        self.transport = transport
        self.ledger = ledger
        self.channels = channels
        self.limiter = limiter
        self.settings = settings or SenderSettings()
        self.clock = clock or SenderClock()
        self.stats = stats or SenderStats()
        self._pending: dict[str, PendingCommand] = {}
        self._channels: dict[str, _Channel] = {}
        self._answering: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()
        self._settled = asyncio.Event()  # replaced on each settle: wakes waiting channels
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping.clear()
        await self.ledger.start()
        await self.results.start()
        await self.source.start()
        try:
            await self.transport.connect()
        except TransportError as error:  # it keeps trying; commands wait for it
            self.stats.last_error = error.reason
            log.warning("egress transport not ready: %s", error.reason)
        now = self.clock.now()
        try:
            self.limiter.restore(await self.ledger.recent_sends(now - self.limiter.window_s), now)
        except LedgerUnavailable as error:
            self.stats.ledger_errors += 1
            self.stats.last_error = str(error)
        self._tasks = [
            asyncio.create_task(self._consume(), name="egress-consume"),
            asyncio.create_task(self._keep_alive(), name="egress-keep-alive"),
        ]
        self.started = True

    async def stop(self) -> None:
        """Stop consuming; what is not settled yet is left to the bus to redeliver."""
        self._stopping.set()
        # The source first: a fetch cancelled half-way keeps nats-py's close waiting.
        with contextlib.suppress(Exception):
            await self.source.close()
        tasks = [*self._tasks, *self._answering]
        tasks += [ch.worker for ch in self._channels.values() if ch.worker is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._channels.clear()
        self._pending.clear()
        for close in (self.transport.close, self.results.close):
            with contextlib.suppress(Exception):
                await close()
        with contextlib.suppress(Exception):
            await self.ledger.close()
        self.started = False

    # -- taking commands -----------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Commands held here: queued, waiting for their turn, or being answered."""
        return len(self._pending) + len(self._answering)

    async def _consume(self) -> None:
        settings = self.settings
        while not self._stopping.is_set():
            if not self.transport.connected:  # commands stay on the bus meanwhile
                await self._reconnect()
                continue
            room = settings.max_pending - self.backlog
            if room <= 0:
                self._room.clear()
                await self.clock.wait(self._room, settings.fetch_timeout_s)
                continue
            batch = min(settings.fetch_batch, room)
            for delivery in await self.source.receive(batch, settings.fetch_timeout_s):
                try:
                    await self._admit(delivery)
                except Exception as error:  # never end the loop on one command
                    self._note_error(f"admitting a command: {error!r}")
                    await self._settle_later(delivery, settings.retry_delay_s)

    async def _reconnect(self) -> None:
        try:
            await self.transport.connect()
        except TransportError as error:
            self.stats.last_error = f"transport: {error.reason}"
            with contextlib.suppress(TimeoutError):  # real seconds: the bus's notion
                await asyncio.wait_for(self._stopping.wait(), self.settings.retry_delay_s)

    async def _admit(self, delivery: ReceivedCommand) -> None:
        now = self.clock.now()
        try:
            command = decode_command(delivery.data)
        except UnreadableCommand as error:
            self._spawn(self._dead_letter(delivery, error.reason))
            return
        except InvalidCommand as error:
            self._spawn(self._answer([delivery], result_for_invalid(error, now)))
            return
        pending = self._pending.get(command.id)
        if pending is not None:  # the same command again (a redelivery or a re-publish)
            self.stats.attached_deliveries += 1
            pending.deliveries.append(delivery)
            return
        try:
            record = await self.ledger.lookup(command.id)
        except LedgerUnavailable as error:
            self._ledger_trouble(error)
            await self._settle_later(delivery, self.settings.retry_delay_s)
            return
        if record is not None:
            self.stats.redelivered_with_outcome += 1
            self._spawn(self._answer([delivery], result_for(command, prior_outcome(record), now)))
            return
        pending = PendingCommand(command, [delivery], now)
        self._pending[command.id] = pending
        channel = self._channels.setdefault(command.channel, _Channel())
        channel.queue.append(pending)
        if channel.worker is None:
            channel.worker = asyncio.create_task(
                self._work(command.channel, channel), name=f"egress-{command.channel}"
            )

    def _spawn(self, answer: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(answer)
        self._answering.add(task)
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Task[None]) -> None:
        self._answering.discard(task)
        self._room.set()
        if not task.cancelled() and task.exception() is not None:
            # unsettled: the bus redelivers it after its ack wait, the ledger answers it
            self._note_error(f"answering a command: {task.exception()!r}")

    async def _keep_alive(self) -> None:
        """Tell the bus that commands waiting here are being worked on."""
        while not self._stopping.is_set():
            await asyncio.sleep(self.settings.progress_interval_s)
            for pending in list(self._pending.values()):
                for delivery in pending.deliveries:
                    with contextlib.suppress(BusError):
                        await delivery.in_progress()

    # -- one channel -----------------------------------------------------------------------

    async def _work(self, name: str, channel: _Channel) -> None:
        try:
            while channel.queue:
                pending = channel.queue[0]
                try:
                    await self._process(pending)
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # one command's trouble never stops the channel
                    self._note_error(f"command {pending.command.id}: {error!r}")
                    for delivery in pending.deliveries:
                        await self._settle_later(delivery, self.settings.retry_delay_s)
                finally:
                    channel.queue.popleft()
                    self._pending.pop(pending.command.id, None)
                    self._room.set()
        finally:
            channel.worker = None
            if not channel.queue and self._channels.get(name) is channel:
                del self._channels[name]

    async def _process(self, pending: PendingCommand) -> None:
        command = pending.command
        refused: SendOutcome | None = None
        if not is_expired(command, self.clock.now(), self.settings.max_age_s):
            # First the channel (IRC: JOIN, which also tells the bot's role there).
            refused = await self.transport.prepare(command.channel, command.channel_id)
            if refused is not None and refused.status == "failed":
                # Not ready (not connected, the JOIN unanswered): nothing was sent or
                # recorded, so the command may simply come back later.
                self.stats.not_ready += 1
                self._note_error(f"{command.channel}: {refused.reason} {refused.detail or ''}")
                for delivery in pending.deliveries:
                    await self._settle_later(delivery, self.settings.retry_delay_s)
                return
        if not self._may_send():  # the lease is ending: the next holder takes it from the bus
            self.stats.not_ready += 1
            for delivery in pending.deliveries:
                await self._settle_later(delivery, self.settings.retry_delay_s)
            return
        now = self.clock.now()
        record = LedgerRecord(
            command.id, command.channel, self.settings.holder, self.settings.fence, now
        )
        try:
            existing = await self.ledger.begin(record)
        except LedgerUnavailable as error:
            self._ledger_trouble(error)
            for delivery in pending.deliveries:
                await self._settle_later(delivery, self.settings.retry_delay_s)
            return
        if existing is not None:  # sent (or started) before, by us or a previous holder
            self.stats.redelivered_with_outcome += 1
            outcome = prior_outcome(existing)
        else:
            outcome = await self._outcome(pending, refused)
            await self._record_outcome(command.id, outcome)
        pending.state = "answering"
        await self._answer(pending.deliveries, result_for(command, outcome, self.clock.now()))

    async def _outcome(self, pending: PendingCommand, refused: SendOutcome | None) -> Outcome:
        command = pending.command
        now = self.clock.now()
        if is_expired(command, now, self.settings.max_age_s):
            return expired_outcome(command, now, self.settings.max_age_s)
        if refused is not None:  # the channel refused the bot (e.g. suspended)
            return Outcome(refused.status, reason=refused.reason, detail=refused.detail)
        try:
            prepared = prepare_text(command.text, command.is_action, self.settings.long_text)
        except TextTooLong as error:
            return Outcome("dropped", reason=TOO_LONG_REASON, detail=str(error))
        return await self._send_parts(pending, prepared)

    async def _send_parts(self, pending: PendingCommand, prepared: PreparedText) -> Outcome:
        command = pending.command
        channel = command.channel
        ids: list[str] = []
        for index, part in enumerate(prepared.parts):
            pending.state = "waiting"
            privileged = await self._wait_turn(channel)
            now = self.clock.now()
            if index == 0 and is_expired(command, now, self.settings.max_age_s):
                return expired_outcome(command, now, self.settings.max_age_s)
            try:
                text = self._distinct(channel, part, privileged, now)
            except RepeatRefused as refused:
                return Outcome("dropped", tuple(ids), DUPLICATE_REASON, str(refused), index)
            if not self._may_send():  # nothing of this part was written
                return Outcome("failed", tuple(ids), LEASE_REASON, "send lease lost", index)
            pending.state = "sending"
            self.limiter.record(channel, now, privileged=privileged)
            answer = await self.transport.send(
                channel, text, command.reply_to, prepared.is_action, channel_id=command.channel_id
            )
            self.limiter.settle(channel, answer.answered_at)
            self._wake_waiting()
            if answer.status != "sent":
                return Outcome(answer.status, tuple(ids), answer.reason, answer.detail, index + 1)
            ids.append(answer.twitch_message_id or "")
            self._note_sent(command, text, index, answer.answered_at)
            if self._on_sent is not None and answer.twitch_message_id:
                self._on_sent(answer.twitch_message_id, channel)
            try:
                await self.ledger.part_sent(
                    command.id, SentPart(index, answer.answered_at, answer.twitch_message_id)
                )
            except LedgerUnavailable as error:  # not durable: sending more could repeat it
                self._ledger_trouble(error)
                return Outcome("unknown", tuple(ids), LEDGER_REASON, str(error), index + 1)
        return Outcome("sent", tuple(ids), attempts=len(prepared.parts))

    def _distinct(self, channel: str, part: str, privileged: bool, now: float) -> str:
        view = self.channels.view(channel)
        return avoid_repeat(
            part,
            view.last_sent,
            now,
            privileged=privileged,
            policy=self.settings.repeat,
            window_s=self.limiter.window_s,
        )

    def _note_sent(self, command: EgressCommand, text: str, index: int, at: float) -> None:
        self.channels.note_sent(command.channel, text, at)
        self.stats.parts_sent += 1
        if index == 0:
            self.stats.latency.observe(at - command.issued_at)

    async def _wait_turn(self, channel: str) -> bool:
        """Wait until the limiter lets a message to ``channel`` go; whether it goes as
        privileged (decided now, with what was learned last)."""
        while True:
            now = self.clock.now()
            view = self.channels.view(channel)
            allowed = self.limiter.next_allowed(channel, view.privileged, view.slow_s, now)
            if allowed <= now:
                return view.privileged
            await self.clock.wait(self._settled, allowed - now)

    def _wake_waiting(self) -> None:
        settled, self._settled = self._settled, asyncio.Event()
        settled.set()

    async def _record_outcome(self, command_id: str, outcome: Outcome) -> None:
        try:
            await self.ledger.finish(command_id, outcome, self.clock.now())
        except LedgerUnavailable as error:  # the result still goes out; a redelivery of
            self._ledger_trouble(error)  # this command would then be reported unknown

    # -- answering -----------------------------------------------------------------------

    async def _answer(self, deliveries: list[ReceivedCommand], result: EgressResult) -> None:
        """Publish ``result``; once the bus acknowledged it, ack every delivery."""
        try:
            await self.results.publish_result(
                result.encode(),
                message_id=result.id,
                destination=result.finalization_destination,
            )
        except DestinationMissing as missing:
            self.stats.destination_missing += 1
            self.stats.last_missing_destination = missing.subject
            for delivery in deliveries:
                await self._settle_later(delivery, self.settings.missing_destination_delay_s)
            return
        except BusError as error:
            self.stats.bus_errors += 1
            self._note_error(f"publishing result {result.id}: {error}")
            for delivery in deliveries:
                await self._settle_later(delivery, self.settings.retry_delay_s)
            return
        outcome = result.outcome
        self.stats.last_missing_destination = ""  # results get through again
        self.stats.result(outcome.status, outcome.reason)
        if result.channel:
            self.channels.note_result(result.channel, outcome.status, outcome.reason)
        for delivery in deliveries:
            await self._ack(delivery)

    async def _dead_letter(self, delivery: ReceivedCommand, reason: str) -> None:
        try:
            await self.results.publish_dead_letter(delivery, reason, now=self.clock.now())
        except BusError as error:
            self.stats.bus_errors += 1
            self._note_error(f"dead-lettering: {error}")
            await self._settle_later(delivery, self.settings.retry_delay_s)
            return
        self.stats.dead_lettered += 1
        await self._ack(delivery)

    async def _ack(self, delivery: ReceivedCommand) -> None:
        try:
            await delivery.ack()
        except BusError as error:  # it may come back: the ledger answers it then
            self.stats.bus_errors += 1
            self._note_error(f"ack: {error}")

    async def _settle_later(self, delivery: ReceivedCommand, delay_s: float) -> None:
        try:
            await delivery.nak(delay_s)
        except BusError as error:  # the bus redelivers it after its ack wait anyway
            self.stats.bus_errors += 1
            self._note_error(f"nak: {error}")

    def _ledger_trouble(self, error: Exception) -> None:
        self.stats.ledger_errors += 1
        self._note_error(f"ledger: {error}")

    def _note_error(self, text: str) -> None:
        self.stats.last_error = text[:300]
        log.warning("egress: %s", text)

    # -- status --------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The ``egress`` block of ``/_debug/twitch`` (nothing secret)."""
        now = self.clock.now()
        waiting: dict[str, int] = {}
        for pending in self._pending.values():
            waiting[pending.state] = waiting.get(pending.state, 0) + 1
        stats = self.stats
        blocked = None
        if stats.last_missing_destination:
            blocked = (
                f"nothing captures {stats.last_missing_destination}: results are held and "
                "their commands left unacknowledged until a stream/topic captures it"
            )
        return {
            "transport": self.transport.describe(),
            "identity": self.settings.identity,
            "holder": self.settings.holder,
            "backlog": {
                "held": self.backlog,
                "byState": waiting,
                "channels": {name: len(ch.queue) for name, ch in sorted(self._channels.items())},
                "bus": getattr(self.source, "backlog", None),
            },
            "window": self.limiter.snapshot(now),
            "channels": self.channels.snapshot(iso_time),
            "stats": stats.describe(),
            "destinationBlocked": blocked,
            "source": self.source.describe(),
            "results": self.results.describe(),
            "ledger": self.ledger.name,
        }
