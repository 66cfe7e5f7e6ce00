"""Membership in Firestore: a collection of member documents whose ``expiresAt`` is checked
inside transactions.

Layout (``CLUSTER_NAME`` = ``<name>``)::

    ingress_egress_clusters/<name>                      {channels: [...]}  the wanted list
    ingress_egress_clusters/<name>/members/<instance>   {joined, seq, startedAt,
                                                         heartbeatAt, expiresAt}

Firestore's own TTL deletion runs within about a day, far too slow to say who is alive, so
liveness is decided here: a member is live while its ``expiresAt`` lies ahead of the
server's clock. Members never compare their own clocks: each heartbeat's write result
carries the server's commit time, from which a member keeps its offset to the server clock
and writes ``expiresAt`` in server time. Reading the members is one transaction that also
deletes expired documents (a document refreshed meanwhile makes the transaction retry
instead of being deleted). A Firestore TTL policy on ``expiresAt`` may be added to collect
what crashed members leave behind; it is not needed for correctness.

Firestore's async client cannot watch, so this store is polled every heartbeat.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.firestore import SERVER_TIMESTAMP, async_transactional

from ingress_egress.bounded import bounded
from ingress_egress.cluster.store import Heartbeat, Member, StoreUnavailable, apply_change

ROOT_COLLECTION = "ingress_egress_clusters"
TIMEOUT_S = 5.0
TRANSACTION_ATTEMPTS = 5


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
        @async_transactional
        async def read(tx: Any) -> dict[str, Member]:
            now = self._server_now()
            live: dict[str, Member] = {}
            for snapshot in await self._members.get(transaction=tx):
                data = snapshot.to_dict() or {}
                expires = data.get("expiresAt")
                if not isinstance(expires, datetime) or expires <= now:
                    tx.delete(snapshot.reference)
                    continue
                joined = frozenset(str(c) for c in data.get("joined") or [])
                live[snapshot.id] = Member(snapshot.id, joined, int(data.get("seq", 0)))
            return live

        return await self._guard(read(self._transaction()))

    # -- the wanted list ------------------------------------------------------------

    async def wanted(self) -> tuple[str, ...] | None:
        snapshot = await self._guard(self._root.get())
        return _channels(snapshot)

    async def seed_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        @async_transactional
        async def seed(tx: Any) -> tuple[str, ...]:
            current = _channels(await self._root.get(transaction=tx))
            if current is not None:
                return current
            tx.set(self._root, {"channels": list(channels)}, merge=True)
            return channels

        return await self._guard(seed(self._transaction()))

    async def change_wanted(self, add: tuple[str, ...], remove: tuple[str, ...]) -> tuple[str, ...]:
        @async_transactional
        async def change(tx: Any) -> tuple[str, ...]:
            current = _channels(await self._root.get(transaction=tx)) or ()
            new = apply_change(current, add, remove)
            tx.set(self._root, {"channels": list(new)}, merge=True)
            return new

        return await self._guard(change(self._transaction()))

    async def replace_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        await self._guard(self._root.set({"channels": list(channels)}, merge=True))
        return channels

    # -- plumbing -------------------------------------------------------------------

    def _transaction(self) -> Any:
        return self._client.transaction(max_attempts=TRANSACTION_ATTEMPTS)

    async def _guard(self, call: Any) -> Any:
        try:
            return await bounded(call, TIMEOUT_S)
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
