"""Membership in Firestore: a collection of member documents with an ``expiresAt`` field.

Layout (``CLUSTER_NAME`` = ``<name>``)::

    ingress_egress_clusters/<name>                      {channels: [...]}  the wanted list
    ingress_egress_clusters/<name>/members/<instance>   {joined, seq, startedAt,
                                                         heartbeatAt, expiresAt}

Firestore's own TTL deletion runs within about a day, far too slow to say who is alive, so
liveness is decided here: a member is live while its ``expiresAt`` lies ahead of the
server's clock. Members never compare their own clocks: each heartbeat's write result
carries the server's commit time, from which a member keeps its offset to the server clock
and writes ``expiresAt`` in server time.

Every check-and-write is atomic on the server through a precondition on the document's
update time (Firestore's one-document transaction, without a transaction's locks): an
expired record is deleted only if nobody refreshed it since it was read, and the wanted list
is changed by compare-and-set. Multi-document transactions were tried first: members reading
each other's records inside transactions deadlocked on the emulator's pessimistic locks and
cost a round trip more. A Firestore TTL policy on ``expiresAt`` may be added to collect what
crashed members leave behind; it is not needed for correctness.

Firestore's async client cannot watch, so this store is polled every heartbeat.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.firestore import SERVER_TIMESTAMP

from ingress_egress.bounded import bounded
from ingress_egress.cluster.store import (
    Heartbeat,
    Member,
    StoreUnavailable,
    apply_change,
    contention_pause,
)

ROOT_COLLECTION = "ingress_egress_clusters"
TIMEOUT_S = 5.0
CAS_ATTEMPTS = 50  # contention is rare (admin changes); back off a little each time


class _Conflict(StoreUnavailable):
    """A precondition failed: somebody else wrote first (caught where that is an answer;
    anywhere else, a failure like any other)."""


class FirestoreStore:
    name = "firestore"

    def __init__(self, client: Any, cluster: str, ttl_s: float) -> None:
        """``client``: a ``google.cloud.firestore.AsyncClient``."""
        self._client = client
        self._root = client.collection(ROOT_COLLECTION).document(cluster)
        self._members = self._root.collection("members")
        self.ttl_s = ttl_s
        self._offset_s = 0.0  # server clock minus ours, from the last write's commit time
        self._changed = asyncio.Event()  # never set: no watch, polled every heartbeat

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    def _server_now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self._offset_s, UTC)

    async def start(self) -> None:
        await self._guard(self._root.get())  # reachable and allowed, or StoreUnavailable

    async def close(self) -> None:
        return None

    # -- members --------------------------------------------------------------------

    async def heartbeat(self, beat: Heartbeat) -> None:
        fields = {
            "instanceId": beat.instance_id,
            "joined": list(beat.joined),
            "startedAt": beat.started_at,
            "seq": beat.seq,
            "heartbeatAt": SERVER_TIMESTAMP,
            "expiresAt": self._server_now() + timedelta(seconds=self.ttl_s),
        }
        result = await self._guard(self._members.document(beat.instance_id).set(fields))
        committed = getattr(result, "update_time", None)
        if committed is not None:
            self._offset_s = committed.timestamp() - time.time()

    async def leave(self, instance_id: str) -> None:
        await self._guard(self._members.document(instance_id).delete())

    async def members(self) -> dict[str, Member]:
        now = self._server_now()
        live: dict[str, Member] = {}
        expired = []
        for snapshot in await self._guard(self._members.get()):
            data = snapshot.to_dict() or {}
            expires = data.get("expiresAt")
            if not isinstance(expires, datetime) or expires <= now:
                expired.append(snapshot)
                continue
            joined = frozenset(str(c) for c in data.get("joined") or [])
            live[snapshot.id] = Member(snapshot.id, joined, int(data.get("seq", 0)))
        for snapshot in expired:
            await self._delete_if_unchanged(snapshot)
        return live

    async def _delete_if_unchanged(self, snapshot: Any) -> None:
        """Collect an expired record, unless its member refreshed it since we read it."""
        option = self._client.write_option(last_update_time=snapshot.update_time)
        try:
            await self._guard(snapshot.reference.delete(option=option))
        except _Conflict:
            pass  # refreshed (alive after all) or deleted by another member: both fine

    # -- the wanted list ------------------------------------------------------------

    async def wanted(self) -> tuple[str, ...] | None:
        snapshot = await self._guard(self._root.get())
        return _channels(snapshot)

    async def seed_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        return await self._compare_and_set(lambda current: channels if current is None else current)

    async def change_wanted(self, add: tuple[str, ...], remove: tuple[str, ...]) -> tuple[str, ...]:
        return await self._compare_and_set(lambda current: apply_change(current or (), add, remove))

    async def replace_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        await self._guard(self._root.set({"channels": list(channels)}, merge=True))
        return channels

    async def _compare_and_set(
        self, change: Callable[[tuple[str, ...] | None], tuple[str, ...]]
    ) -> tuple[str, ...]:
        """Read, change, write only if nobody wrote in between (the document's update time
        as a precondition, or its absence); otherwise read again."""
        for _ in range(CAS_ATTEMPTS):
            snapshot = await self._guard(self._root.get())
            current = _channels(snapshot)
            new = change(current)
            if new == current:
                return new
            try:
                if snapshot.exists:
                    option = self._client.write_option(last_update_time=snapshot.update_time)
                    await self._guard(self._root.update({"channels": list(new)}, option=option))
                else:
                    await self._guard(self._root.create({"channels": list(new)}))
                return new
            except _Conflict:
                await contention_pause()
        raise StoreUnavailable("the wanted list kept changing under us; try again")

    # -- plumbing -------------------------------------------------------------------

    async def _guard(self, call: Any) -> Any:
        try:
            return await bounded(call, TIMEOUT_S)
        except (gexc.FailedPrecondition, gexc.Aborted, gexc.AlreadyExists, gexc.NotFound):
            raise _Conflict from None
        except TimeoutError:
            raise StoreUnavailable(f"firestore timed out after {TIMEOUT_S:g}s") from None
        except (gexc.GoogleAPIError, OSError, ValueError) as error:
            # ValueError: a transaction gave up after its attempts (contention).
            raise StoreUnavailable(f"firestore: {type(error).__name__}") from None
        except Exception as error:  # google-auth, grpc: say what, never the payload
            raise StoreUnavailable(f"firestore: {type(error).__name__}") from None


def _channels(snapshot: Any) -> tuple[str, ...] | None:
    if not snapshot.exists:
        return None
    items = (snapshot.to_dict() or {}).get("channels")
    if not isinstance(items, list):
        return None
    return tuple(str(c) for c in items)
