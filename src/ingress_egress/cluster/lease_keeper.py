"""One member's side of the send lease: take it when free, renew it, know when to stop.

Every heartbeat the keeper renews the lease it holds, or tries to take it. Whether the
holder may send is decided by time alone, on this member's monotonic clock:

    may_send  <=>  held  and  now - (when the last successful renewal was SENT) < TTL - margin

The store restarts the TTL when it applies a write, which is after the write was sent; so
the record cannot expire, and nobody can take the lease over, before that moment plus the
TTL. The holder stops ``margin`` earlier, whatever it knows or does not know: a renewal that
hangs, a store that is down, a network cut off. ``docs/egress.md`` ("Cluster mode: one
sender") gives the whole argument and what the margin covers.

Gains and losses go to the listeners (the sender starts and stops consuming) in order,
from a task of their own, so that a slow listener never delays a renewal. ``leave`` stops
sending first, then frees the lease so that a successor takes it at its next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ingress_egress.cluster.lease import LeaseGrant, LeaseHolder, LeaseLost, LeaseStore
from ingress_egress.cluster.store import StoreUnavailable
from ingress_egress.retry import Backoff

log = logging.getLogger("ingress_egress.cluster.lease")

OnGained = Callable[[int], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]
ReportError = Callable[[str, str], None]  # (code, message): e.g. ErrorLog.add

DEFAULT_MARGIN_S = 2.0


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """``ttl_s``: CLUSTER_MEMBER_TTL_MS; ``heartbeat_s``: CLUSTER_HEARTBEAT_MS; ``margin_s``:
    how long before the TTL the holder stops sending (default: 2 s, at most a quarter of
    the TTL)."""

    ttl_s: float = 10.0
    heartbeat_s: float = 2.0
    margin_s: float | None = None
    leave_wait_s: float = 4.0  # how long leave() waits for the listeners to stop sending

    def __post_init__(self) -> None:
        if self.ttl_s <= 0 or self.heartbeat_s <= 0 or self.margin < 0:
            raise ValueError("lease timing: TTL and heartbeat must be positive, margin >= 0")
        if self.heartbeat_s + self.margin >= self.ttl_s:
            raise ValueError(
                f"lease timing: heartbeat ({self.heartbeat_s:g}s) + margin ({self.margin:g}s) "
                f"must be shorter than the TTL ({self.ttl_s:g}s), or the holder could never "
                "renew in time to keep sending"
            )

    @property
    def margin(self) -> float:
        if self.margin_s is not None:
            return self.margin_s
        return min(DEFAULT_MARGIN_S, self.ttl_s / 4)


class LeaseKeeper:
    """Keeps the send lease for ``member`` in ``store`` (``egress.lease.SendLease``).

    ``clock``: monotonic seconds, for the safety rule (``run`` waits by it in real time;
    tests that move a fake clock call ``tick`` themselves). ``wall``: for ``describe``.
    ``report_error(code, message)``: where losses and store failures are counted.
    """

    def __init__(
        self,
        store: LeaseStore,
        member: str,
        timing: LeaseTiming | None = None,
        on_gained: OnGained | None = None,
        on_lost: OnLost | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        report_error: ReportError | None = None,
    ) -> None:
        self.store = store
        self.member = member
        self.timing = timing or LeaseTiming()
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._clock = clock
        self._wall = wall
        self._report_error = report_error
        self._term = uuid.uuid4().hex
        self._grant: LeaseGrant | None = None
        self._renewed_at = 0.0  # our clock, when the last applied write was sent
        self._held_since: float | None = None  # wall clock, for people
        self._seen = LeaseHolder(None, 0)
        self._fence_seen = 0
        self.acquisitions = 0
        self.renewals = 0
        self.takeovers = 0  # new fences seen here after the first (ours or another's)
        self.store_connected = False
        self.store_error = "connecting"
        self._leaving = False
        self._stop = asyncio.Event()
        self._round: asyncio.Task[None] | None = None
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._backoff = Backoff(self.timing.heartbeat_s / 4, self.timing.ttl_s)

    # -- what the sender reads --------------------------------------------------------

    @property
    def holder(self) -> str | None:
        return self.member if self._grant is not None else self._seen.holder

    @property
    def fence(self) -> int:
        return self._grant.fence if self._grant is not None else self._seen.fence

    @property
    def ttl_s(self) -> float:
        """The TTL the safety margin is measured against: the store's, if it is shorter."""
        return min(self.timing.ttl_s, self.store.ttl_s)

    @property
    def last_renewal_at(self) -> float | None:
        """When (our clock) the last write that kept the lease was sent; None if not held."""
        return self._renewed_at if self._grant is not None else None

    def valid_until(self) -> float | None:
        """When (our clock) sending must stop unless a renewal succeeds first."""
        if self._grant is None or self._leaving:
            return None
        return self._renewed_at + self.ttl_s - self.timing.margin

    def may_send(self, now: float | None = None) -> bool:
        until = self.valid_until()
        if until is None:
            return False
        return (self._clock() if now is None else now) < until

    def listen(self, on_gained: OnGained | None, on_lost: OnLost | None) -> None:
        self._on_gained = on_gained
        self._on_lost = on_lost

    # -- one round --------------------------------------------------------------------

    async def tick(self) -> None:
        """Renew the lease we hold or try to take it; then stop if it ran out meanwhile."""
        if self._leaving:
            return
        self._drop_if_expired()
        if self._grant is None:
            await self._try_acquire()
        else:
            await self._try_renew(self._grant)
        self._drop_if_expired()

    async def _try_acquire(self) -> None:
        sent_at = self._clock()
        try:
            answer = await self.store.acquire(self.member, self._term)
        except StoreUnavailable as error:
            self._store_failed(error)
            return
        self._store_ok()
        if isinstance(answer, LeaseHolder):
            self._observe(answer)
            return
        self._grant = answer
        self._renewed_at = sent_at
        self._held_since = self._wall()
        self.acquisitions += 1
        self._observe(LeaseHolder(self.member, answer.fence))
        log.info("send lease taken by %s, fence %d", self.member, answer.fence)
        self._emit("gained", answer.fence)

    async def _try_renew(self, grant: LeaseGrant) -> None:
        sent_at = self._clock()
        try:
            renewed = await self.store.renew(grant)
        except LeaseLost as lost:
            self._store_ok()
            self._lose(str(lost))
            if lost.holder is not None:
                self._observe(LeaseHolder(lost.holder, lost.fence))
            return
        except StoreUnavailable as error:
            self._store_failed(error)
            return
        self._store_ok()
        if self._grant is grant:  # not dropped by time while the write was on its way
            self._grant = renewed
            self._renewed_at = sent_at
            self.renewals += 1

    def _drop_if_expired(self) -> None:
        if self._grant is not None and not self._leaving and not self.may_send():
            age = self._clock() - self._renewed_at
            self._lose(f"not renewed for {age:.1f}s ({self.store_error or 'no answer'})")

    def _lose(self, why: str) -> None:
        if self._grant is None:
            return
        self._grant = None
        self._held_since = None
        self._seen = LeaseHolder(None, self._seen.fence)  # who has it now: the store will say
        log.warning(
            "send lease lost by %s: %s; sending stops",
            self.member,
            why,
            extra={"errorCode": "egress_lease_lost"},
        )
        if self._report_error is not None:
            self._report_error("egress_lease_lost", why)
        self._emit("lost", why)

    def _observe(self, seen: LeaseHolder) -> None:
        if seen.fence > self._fence_seen:
            if self._fence_seen:
                self.takeovers += 1
            self._fence_seen = seen.fence
        self._seen = seen

    def _store_failed(self, error: StoreUnavailable) -> None:
        if self.store_connected or self.store_error == "connecting":
            log.error(
                "send lease store unreachable (%s)%s",
                error,
                ": sending stops unless it answers in time" if self._grant else "",
                extra={"errorCode": "egress_lease_store_unavailable"},
            )
            if self._report_error is not None:
                self._report_error("egress_lease_store_unavailable", str(error))
        self.store_connected = False
        self.store_error = str(error)

    def _store_ok(self) -> None:
        if not self.store_connected and self.store_error != "connecting":
            log.info("send lease store reachable again")
        self.store_connected = True
        self.store_error = ""

    # -- listeners ----------------------------------------------------------------------

    def _emit(self, kind: str, argument: Any) -> None:
        self._events.put_nowait((kind, argument))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch(), name="send-lease-listeners")

    async def _dispatch(self) -> None:
        while True:
            kind, argument = await self._events.get()
            listener: Callable[[Any], Awaitable[None]] | None = (
                self._on_gained if kind == "gained" else self._on_lost
            )
            try:
                if listener is not None:
                    await listener(argument)
            except Exception:  # a listener's bug must not end the lease's bookkeeping
                log.exception("send lease listener failed on %s", kind)
            finally:
                self._events.task_done()

    async def listeners_done(self) -> None:
        """Wait until every gain and loss so far has been handled by the listeners."""
        await self._events.join()

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, then renew or try to take the lease every heartbeat until ``leave``."""
        if not await self._connect():
            return
        try:
            while not self._stop.is_set():
                self.store.changed.clear()
                self._round = asyncio.ensure_future(self.tick())
                failed = await self._watch_round(self._round)
                await self._pause(self._next_delay(failed))
        finally:
            if self._round is not None and not self._round.done() and not self._leaving:
                self._round.cancel()

    async def _pause(self, seconds: float) -> None:
        """Until the next round: ``seconds``, or less when we leave or the store says the
        lease was just freed (a follower then tries at once)."""
        waiters = [asyncio.ensure_future(self._stop.wait())]
        if self._grant is None:
            waiters.append(asyncio.ensure_future(self.store.changed.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _next_delay(self, failed: bool) -> float:
        if not failed:
            self._backoff.reset()
            return self.timing.heartbeat_s
        delay = self._backoff.next_delay()
        if self._grant is not None:  # keep trying to renew while the lease lasts
            delay = min(delay, self.timing.heartbeat_s / 2)
        return delay

    async def _connect(self) -> bool:
        while not self._stop.is_set():
            try:
                await self.store.start()
                return True
            except StoreUnavailable as error:
                self._store_failed(error)
                await self._backoff.wait(self._stop)
        return False

    async def _watch_round(self, round_: asyncio.Task[None]) -> bool:
        """Wait for one round; should it outlast the lease (a store call hanging), stop
        sending on time anyway. True when the store failed in it."""
        while not round_.done():
            until = self.valid_until()
            timeout = None if until is None else max(0.0, until - self._clock())
            await asyncio.wait({round_}, timeout=timeout)
            self._drop_if_expired()
        try:
            round_.result()
        except asyncio.CancelledError:
            return True
        except Exception as error:  # a bug here must not end the loop
            log.exception("send lease round failed")
            self._store_failed(StoreUnavailable(f"{type(error).__name__}: {error}"))
        return not self.store_connected

    async def leave(self) -> None:
        """Stop sending (the ``on_lost`` listener is awaited, bounded), then free the
        lease so a successor takes it at once instead of after the TTL."""
        self._leaving = True  # may_send is false from here on
        self._stop.set()
        wait = self.timing.leave_wait_s
        if self._round is not None and not self._round.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._round), wait)
            self._round.cancel()
        grant, self._grant = self._grant, None
        if grant is None:
            return
        self._held_since = None
        self._emit("lost", "leaving")
        try:
            await asyncio.wait_for(self._events.join(), wait)
        except TimeoutError:
            log.warning("send lease: the sender did not stop within %gs; releasing anyway", wait)
        try:
            await self.store.release(grant)
            log.info("send lease released by %s", self.member)
        except StoreUnavailable as error:
            log.warning("send lease: could not release it (%s); it expires by TTL", error)

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        with contextlib.suppress(Exception):
            await self.store.close()

    # -- what ops see -------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        now = self._clock()
        held = self._grant is not None and not self._leaving
        until = self.valid_until()
        return {
            "mode": "cluster",
            "store": self.store.name,
            "member": self.member,
            "holder": self.holder,
            "self": held,
            "fence": self.fence,
            "heldSince": None if self._held_since is None else _iso(self._held_since),
            "lastRenewalAgeSeconds": round(now - self._renewed_at, 2) if held else None,
            "maySend": self.may_send(now),
            "validForSeconds": None if until is None else round(max(0.0, until - now), 2),
            "ttlSeconds": self.ttl_s,
            "marginSeconds": self.timing.margin,
            "acquisitions": self.acquisitions,
            "renewals": self.renewals,
            "takeovers": self.takeovers,
            "storeConnected": self.store_connected,
            "storeError": self.store_error or None,
        }


def _iso(epoch: float) -> str:
    millis = int(epoch * 1000)
    second, ms = divmod(millis, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{ms:03d}Z"
