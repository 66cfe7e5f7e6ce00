"""The cluster member: heartbeats, the live view, which channels this member reads.

Each member runs one ``ClusterCoordinator``. It publishes a heartbeat (its id and the
channels Twitch confirmed joined) every ``heartbeat_s``, reads the live members and the
cluster's wanted list from the store, and tells the chat source what to read (its
``reading``, this member's share of ``wanted``; the pool's ``ChatState``, read here only):

* channels it owns (rendezvous hashing over the live members, ``assignment.py``) are added
  at once;
* channels it no longer owns are kept until every new owner has published them as joined
  (make before break), or ``handover_max_s`` has passed; channels nobody wants any more go
  at once;
* while the store is unreachable nothing changes: readers keep reading what they read, and
  after the store returns the member waits one TTL before it acts on the view again
  (members that re-register one by one must not look like members that died).

On shutdown (``leave``) the member deletes its record first, so the others take its channels
over while it still reads them, and waits (bounded) until they have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ingress_egress.cluster.assignment import readers_of
from ingress_egress.cluster.store import CoordinationStore, Heartbeat, Member, StoreUnavailable
from ingress_egress.retry import Backoff
from ingress_egress.status import ChatState, ErrorLog
from ingress_egress.twitch.logins import is_login

log = logging.getLogger("ingress_egress.cluster")

LOOP_TICK_S = 0.25  # how often joined-set changes are checked for an early heartbeat
LISTED_MAX = 100  # channels listed by name in /_debug/twitch (counts are always exact)
VIEWS_TO_DROP = 2  # consecutive views without a member before it counts as gone


class ChannelReader(Protocol):
    """The chat source as the coordinator drives it (``ChatPool``)."""

    def change(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> Any: ...


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    instance_id: str
    coordination: str  # nats | firestore (| memory in tests)
    cluster_name: str = "ingress-egress"
    replicas: int = 2
    heartbeat_s: float = 2.0
    ttl_s: float = 10.0
    handover_max_s: float = 600.0
    leave_wait_s: float = 4.0

    @property
    def settle_s(self) -> float:
        """After a store outage, every live member has refreshed its record within one TTL
        of the store's return (it beats several times per TTL); until then a missing record
        may be a member that has not reconnected yet, not a dead one."""
        return self.ttl_s


@dataclass(frozen=True, slots=True)
class WantedChange:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    wanted: tuple[str, ...]


class ClusterCoordinator:
    def __init__(
        self,
        store: CoordinationStore,
        reader: ChannelReader,
        state: ChatState,
        config: ClusterConfig,
        errors: ErrorLog,
        seed: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.reader = reader
        self.state = state
        self.config = config
        self.errors = errors
        self.seed = seed
        self._clock = clock
        self.wanted: tuple[str, ...] = ()
        self.members: dict[str, Member] = {}
        self.owned: set[str] = set()
        self.handing_over: dict[str, float] = {}  # channel -> when it stopped being ours
        self.under_replicated: list[str] = []
        self.store_connected = False
        self.store_error = "connecting"
        self.view_known = False
        self.last_rebalance_at: str | None = None
        self.rebalances = 0
        self.leaving = False
        self._started_at = _iso_now()
        self._seq = 0
        self._published: tuple[str, ...] | None = None
        self._last_beat = -1e9
        self._stable_since: float | None = None
        self._seen: dict[str, tuple[int, float]] = {}  # member -> (seq, when it changed)
        self._misses: dict[str, int] = {}  # member -> consecutive views that missed it
        self._replace: tuple[str, ...] | None = None  # SIGHUP / channel document, to write
        self._wake = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        await self._connect()
        while True:
            try:
                await self.tick()
            except Exception as error:  # a bug here must not end the membership silently
                log.exception("cluster round failed; trying again")
                self.errors.add("cluster_error", f"{type(error).__name__}: {error}")
                await asyncio.sleep(self.config.heartbeat_s)
            await self._sleep(LOOP_TICK_S)

    async def _connect(self) -> None:
        backoff = Backoff(0.5, 15.0)
        while True:
            try:
                await self.store.start()
                wanted = await self._initial_wanted()
                break
            except StoreUnavailable as error:
                self._store_failed(error)
                await asyncio.sleep(backoff.next_delay())
        self._set_wanted(wanted)
        # A fresh start acts after one heartbeat: members started at the same moment (a
        # new deployment) then see each other instead of each claiming every channel.
        self._stable_since = self._clock() - self.config.settle_s + self.config.heartbeat_s
        log.info(
            "cluster %s: member %s, coordination %s, %d wanted channels, %d replicas",
            self.config.cluster_name,
            self.config.instance_id,
            self.config.coordination,
            len(self.wanted),
            self.config.replicas,
        )

    async def _initial_wanted(self) -> tuple[str, ...]:
        if self.seed:
            return await self.store.seed_wanted(self.seed)
        return await self.store.wanted() or ()

    async def leave(self) -> None:
        """Hand every channel over, then return (bounded by ``leave_wait_s``)."""
        self.leaving = True
        deadline = self._clock() + self.config.leave_wait_s
        try:
            await self.store.leave(self.config.instance_id)
        except StoreUnavailable as error:
            log.warning("cluster: could not remove our record (%s); it expires by TTL", error)
            return
        while self._clock() < deadline:
            try:
                await self._read_view()
            except StoreUnavailable:
                return
            self._rebalance()
            if not self.state.reading:
                log.info("cluster: every channel handed over; leaving")
                return
            await self._sleep(min(0.2, self.config.heartbeat_s))
        log.warning(
            "cluster: left with %d channels not yet confirmed by their new readers "
            "(their other replica still reads them)",
            len(self.state.reading),
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.store.close()

    async def _sleep(self, seconds: float) -> None:
        changed = self.store.changed
        waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # -- one round --------------------------------------------------------------------

    async def tick(self) -> None:
        """Heartbeat when due (or when the joined set changed), then read the view and
        rebalance when something may have changed."""
        if self.leaving:
            return
        now = self._clock()
        joined = tuple(sorted(self.state.joined))
        due = now - self._last_beat >= self.config.heartbeat_s
        woken = self.store.changed.is_set() or self._wake.is_set()
        self.store.changed.clear()
        self._wake.clear()
        if not (due or woken or joined != self._published):
            return
        try:
            if self._replace is not None:
                await self._write_replace()
            if due or joined != self._published:
                await self._heartbeat(joined)
            await self._read_view()
        except StoreUnavailable as error:
            self._store_failed(error)
            return
        self._store_ok()
        if self._settled():
            self._rebalance()

    async def _heartbeat(self, joined: tuple[str, ...]) -> None:
        self._seq += 1
        beat = Heartbeat(self.config.instance_id, joined, self._started_at, self._seq)
        await self.store.heartbeat(beat)
        self._published = joined
        self._last_beat = self._clock()

    async def _read_view(self) -> None:
        members = dict(await self.store.members())
        wanted = await self.store.wanted()
        now = self._clock()
        # A member is gone when two views in a row miss it: one odd answer from the store
        # must not make every member claim every channel.
        fresh = set(members)
        for gone in set(self.members) - fresh:
            misses = self._misses.get(gone, 0) + 1
            if misses < VIEWS_TO_DROP:
                self._misses[gone] = misses
                members[gone] = self.members[gone]
            else:
                self._misses.pop(gone, None)
        for seen in fresh:
            self._misses.pop(seen, None)
        for member_id, member in members.items():
            last = self._seen.get(member_id)
            if last is None or last[0] != member.seq:
                self._seen[member_id] = (member.seq, now)
        for gone in set(self._seen) - set(members):
            del self._seen[gone]
        self.members = members
        if wanted is not None:
            self._set_wanted(wanted)
        self.view_known = True

    def _store_failed(self, error: StoreUnavailable) -> None:
        if self.store_connected or self.store_error == "connecting":
            log.error(
                "cluster store unreachable (%s): keeping the channels we read",
                error,
                extra={"errorCode": "cluster_store_unavailable"},
            )
            self.errors.add("cluster_store_unavailable", str(error))
        self.store_connected = False
        self.store_error = str(error)
        self._stable_since = None

    def _store_ok(self) -> None:
        if not self.store_connected:
            if self.store_error != "connecting":
                log.info("cluster store reachable again")
            self.store_connected = True
            self.store_error = ""
        if self._stable_since is None:
            self._stable_since = self._clock()

    def _settled(self) -> bool:
        return (
            self._stable_since is not None
            and self._clock() - self._stable_since >= self.config.settle_s
        )

    # -- assignment ---------------------------------------------------------------------

    def live_members(self) -> set[str]:
        live = set(self.members)
        if self.leaving:
            live.discard(self.config.instance_id)
        else:
            live.add(self.config.instance_id)  # we are alive, whatever the store says
        return live

    def _rebalance(self) -> None:
        me = self.config.instance_id
        live = sorted(self.live_members())
        replicas = self.config.replicas
        readers = {c: readers_of(c, live, replicas) for c in self.wanted}
        owned = {c for c, who in readers.items() if me in who}
        reading = set(self.state.reading)
        joined = self.state.joined
        wanted = set(self.wanted)
        now = self._clock()
        release: list[str] = []
        for channel in sorted(reading - owned):
            if channel not in wanted or channel not in joined:
                # Nobody wants it, or we never got it joined (a queued JOIN): keeping it
                # protects nothing, and dropping it frees a JOIN for a channel we own.
                release.append(channel)
                continue
            since = self.handing_over.setdefault(channel, now)
            if self._confirmed(channel, readers[channel]) or (
                now - since >= self.config.handover_max_s
            ):
                release.append(channel)
        for channel in owned | set(release):
            self.handing_over.pop(channel, None)
        add = [c for c in self.wanted if c in owned and c not in reading]
        self.owned = owned
        self.under_replicated = self._under_replicated(live)
        if add or release:
            self.reader.change(add=add, remove=release)
            self.rebalances += 1
            self.last_rebalance_at = _iso_now()
            log.info(
                "cluster rebalance: %d live members, own %d channels (+%d, -%d), handing over %d",
                len(live),
                len(owned),
                len(add),
                len(release),
                len(self.handing_over),
            )

    def _confirmed(self, channel: str, new_readers: tuple[str, ...]) -> bool:
        """Every new reader of ``channel`` has published it as joined."""
        others = [m for m in new_readers if m != self.config.instance_id]
        return bool(others) and all(
            m in self.members and channel in self.members[m].joined for m in others
        )

    def _under_replicated(self, live: Sequence[str]) -> list[str]:
        """Wanted channels with fewer members reading them than ``min(replicas, live)``."""
        target = min(self.config.replicas, len(live))
        joined_by = [self.members[m].joined for m in live if m in self.members]
        mine = self.state.joined
        out = []
        for channel in self.wanted:
            count = sum(1 for joined in joined_by if channel in joined)
            if self.config.instance_id not in self.members and channel in mine:
                count += 1  # our own record not (yet) in the store
            if count < target:
                out.append(channel)
        return out

    # -- the wanted list ------------------------------------------------------------------

    def _set_wanted(self, channels: tuple[str, ...]) -> None:
        valid = tuple(c for c in dict.fromkeys(channels) if is_login(c))
        if len(valid) != len(set(channels)):
            bad = [c for c in channels if not is_login(c)][:3]
            self.errors.add("cluster_wanted_invalid", f"ignored invalid logins: {bad!r}")
        self.wanted = valid

    async def change_wanted(self, add: Sequence[str], remove: Sequence[str]) -> WantedChange:
        """The admin route: change the cluster's list (raises ``StoreUnavailable``)."""
        before = set(self.wanted)
        wanted = await self.store.change_wanted(tuple(add), tuple(remove))
        self._set_wanted(wanted)
        self._wake.set()
        after = set(self.wanted)
        return WantedChange(
            added=tuple(c for c in self.wanted if c not in before),
            removed=tuple(c for c in dict.fromkeys(remove) if c in before and c not in after),
            wanted=self.wanted,
        )

    def request_replace(self, channels: tuple[str, ...]) -> None:
        """SIGHUP or the channel document: make ``channels`` the cluster's list (written by
        the loop, retried until the store takes it)."""
        self._replace = channels
        self._wake.set()

    async def _write_replace(self) -> None:
        channels = self._replace
        if channels is None:
            return
        if tuple(channels) != self.wanted:
            await self.store.replace_wanted(channels)
            log.info("cluster wanted list replaced: %d channels", len(channels))
        self._set_wanted(channels)
        self._replace = None

    # -- what ops see -------------------------------------------------------------------

    @property
    def replicas(self) -> int:
        return self.config.replicas

    def readiness(self) -> list[str]:
        if not self.store_connected:
            return [f"cluster store unreachable ({self.store_error})"]
        if not self.view_known:
            return ["cluster membership not read yet"]
        return []

    def describe(self) -> dict[str, Any]:
        now = self._clock()
        owned = sorted(self.owned)
        return {
            "instanceId": self.config.instance_id,
            "clusterName": self.config.cluster_name,
            "coordination": self.config.coordination,
            "storeConnected": self.store_connected,
            "storeError": self.store_error or None,
            "replicas": self.config.replicas,
            "members": [
                {
                    "id": member_id,
                    "self": member_id == self.config.instance_id,
                    "lastHeartbeatAgeSeconds": round(now - self._seen[member_id][1], 1)
                    if member_id in self._seen
                    else None,
                    "joinedChannels": len(member.joined),
                }
                for member_id, member in sorted(self.members.items())
            ],
            "wantedChannels": len(self.wanted),
            "owned": {"count": len(owned), "channels": owned[:LISTED_MAX]},
            "handingOver": sorted(self.handing_over)[:LISTED_MAX],
            "underReplicated": {
                "count": len(self.under_replicated),
                "channels": self.under_replicated[:LISTED_MAX],
            },
            "lastRebalanceAt": self.last_rebalance_at,
            "rebalances": self.rebalances,
            "leaving": self.leaving,
        }


def _iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
