"""The egress side as one component for the composition root.

It owns the order of things, nothing else: the sender runs only while this process holds
the send lease (always, on one instance; one member at a time in a cluster), and it is
built when the lease is gained, because only then is it worth learning who the bot is
(the token's user id and scopes pick the transport when ``EGRESS_TRANSPORT=auto``). On
loss or shutdown the sender is stopped: what it has not settled stays unacknowledged on the
bus for the next holder. A periodic sweep reports sends never seen back in chat.

The parts are built by the composition root and handed in: ``build_sender(runner, fence)``
makes a sender (its transport chosen) for a new term of the lease, counting into the
runner's ``stats``, asking its lease before each send and telling its echo watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from ingress_egress.egress.echo import EchoWatch, channel_login
from ingress_egress.egress.lease import SendLease
from ingress_egress.egress.sender_stats import SenderStats
from ingress_egress.egress.transport import ChatTransport
from ingress_egress.retry import Backoff

log = logging.getLogger("ingress_egress.egress")

SWEEP_EVERY_S = 1.0
START_RETRY_INITIAL_S = 1.0
START_RETRY_MAX_S = 60.0


class Sender(Protocol):
    """What the runner needs of ``EgressSender``."""

    transport: ChatTransport

    @property
    def backlog(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class EgressRunner:
    def __init__(
        self,
        lease: SendLease,
        build_sender: Callable[[EgressRunner, int], Awaitable[Sender]],
        *,
        echo: EchoWatch | None = None,
        reading: Callable[[], Iterable[str]] = tuple,
        report_error: Callable[[str, str], None] | None = None,
    ) -> None:
        """``reading``: the channels this service reads now (sends to them are echoed)."""
        self.lease = lease
        self.echo = echo
        self._build_sender = build_sender
        self._reading = reading
        self._report_error = report_error
        self.sender: Sender | None = None
        self.stats = SenderStats()  # across senders: one per term of the lease
        self.standby_reason = "waiting for the send lease"
        self._tasks: list[asyncio.Task[None]] = []
        self._starting: asyncio.Task[None] | None = None
        lease.listen(self._gained, self._lost)

    async def run(self) -> None:
        """Hold the lease (and so send) until ``stop``; sweep the echo watch meanwhile."""
        if self.echo is not None:
            self._tasks.append(asyncio.create_task(self._sweep(), name="egress-echo"))
        await self.lease.run()

    async def stop(self) -> None:
        """Leave the lease: the sender stops first (``_lost``), then the lease is given up
        so a successor takes over at once."""
        await self.lease.leave()
        self._cancel_starting()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_sender("stopped")

    async def _gained(self, fence: int) -> None:
        """Start sending in the background: building a sender asks Twitch who the bot is,
        which may take retries, and the lease's own loop must not wait for it."""
        self._cancel_starting()
        self._starting = asyncio.create_task(self._start(fence), name="egress-start")

    async def _start(self, fence: int) -> None:
        backoff = Backoff(START_RETRY_INITIAL_S, START_RETRY_MAX_S)
        self.standby_reason = "starting"
        while True:
            try:
                sender = await self._build_sender(self, fence)
                await sender.start()
                break
            except Exception as error:  # Twitch or the bus not there yet: try again
                delay = backoff.next_delay()
                self.standby_reason = f"could not start ({error}); retrying in {delay:.0f} s"
                log.warning("egress sender could not start: %s", error)
                if self._report_error is not None:
                    self._report_error("egress_start_failed", str(error))
                await asyncio.sleep(delay)
        self.sender = sender
        log.info("egress: sending (lease fence %d)", fence)

    def _cancel_starting(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        self._starting = None

    async def _lost(self, why: str) -> None:
        self._cancel_starting()
        await self._stop_sender(f"lease lost: {why}")

    async def _stop_sender(self, why: str) -> None:
        sender, self.sender = self.sender, None
        self.standby_reason = why
        if sender is not None:
            with contextlib.suppress(Exception):
                await sender.stop()
            log.info("egress: stopped sending (%s)", why)

    def watch_echo(self, message_id: str, channel: str) -> bool:
        """The sender's ``on_sent``: watch a send for its echo. The channels read are
        refreshed only by the periodic sweep, up to a second late (and empty during the
        first second), so a send to a channel joined since would be counted unwatched and
        never confirmed (a burst right after a start or a restart): ask the read side first."""
        echo = self.echo
        if echo is None:
            return False
        if not echo.watches(channel) and channel_login(channel) in self._reading():
            echo.set_channels(self._reading())
        return echo.expect(message_id, channel)

    async def _sweep(self) -> None:
        assert self.echo is not None
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            self.echo.set_channels(self._reading())
            self.echo.sweep()

    @property
    def backlog(self) -> int:
        """Commands held by the sender (0 while it does not run: they wait on the bus)."""
        return 0 if self.sender is None else self.sender.backlog

    def destination_blocked(self) -> bool:
        return bool(self.stats.last_missing_destination)

    def readiness(self) -> list[str]:
        """Not-ready reasons only while this process should be sending and cannot."""
        if self.sender is None or self.sender.transport.connected:
            return []
        return [f"egress: not connected to Twitch ({self.sender.transport.name})"]

    def describe(self) -> dict[str, Any]:
        """The ``egress`` block of ``/_debug/twitch``."""
        block: dict[str, Any] = {"sending": self.sender is not None}
        if self.sender is not None:
            block.update(self.sender.describe())
        else:
            block["standby"] = self.standby_reason
        block["lease"] = self.lease.describe()
        if self.echo is not None:
            block["echo"] = self.echo.describe()
        return block
