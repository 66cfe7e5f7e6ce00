"""Membership in NATS JetStream key-value buckets, on the nats-server the bus already uses.

Two buckets per cluster (``CLUSTER_NAME``):

* ``<name>-members``: one key per member (its instance id), the value its ``Heartbeat``.
  The bucket's TTL is ``CLUSTER_MEMBER_TTL_MS``: nats-server itself removes a key that was
  not refreshed within it, so a dead member disappears without anyone's clock being trusted.
* ``<name>-channels``: the key ``wanted``, the cluster's wanted channels (JSON), changed by
  compare-and-set on the key's revision.

A watcher on both buckets wakes the coordinator as soon as a member comes, leaves or (on
nats-server 2.11+, which places expiry markers) expires, or the list changes. The view itself
is always read afresh (``members``): a watcher that missed something during a reconnect can
delay a rebalance by one heartbeat, never make it wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType

from ingress_egress.bus.nats_kv import describe_error, kv_call
from ingress_egress.cluster.store import (
    Heartbeat,
    Member,
    StoreUnavailable,
    apply_change,
    contention_pause,
)

log = logging.getLogger("ingress_egress.cluster.nats")

WANTED_KEY = "wanted"
REQUEST_TIMEOUT_S = 3.0
CAS_ATTEMPTS = 50  # contention is rare (admin changes); back off a little each time


def bucket_names(cluster: str) -> tuple[str, str]:
    return f"{cluster}-members", f"{cluster}-channels"


class NatsKvStore:
    name = "nats"

    def __init__(self, url: str, cluster: str, ttl_s: float) -> None:
        self.url = url
        self.members_bucket, self.channels_bucket = bucket_names(cluster)
        self.ttl_s = ttl_s
        self._changed = asyncio.Event()
        self._nc: Any = None
        self._js: Any = None  # nats.js.JetStreamContext
        self._members: Any = None  # nats.js.kv.KeyValue
        self._channels: Any = None
        self._watchers: list[asyncio.Task[None]] = []
        self._last_error = "no answer"

    @property
    def changed(self) -> asyncio.Event:
        return self._changed

    async def start(self) -> None:
        try:
            self._nc = await asyncio.wait_for(self._connect(), 2 * REQUEST_TIMEOUT_S)
            js = self._nc.jetstream(timeout=REQUEST_TIMEOUT_S)
            self._members = await self._bucket(js, self.members_bucket, self.ttl_s)
            self._channels = await self._bucket(js, self.channels_bucket, None)
            self._js = js
        except StoreUnavailable:
            await self.close()
            raise
        except TimeoutError:
            await self.close()
            # nats-py retries the first connection too: say why it failed, not that it hung.
            raise StoreUnavailable(f"cannot reach {self.url}: {self._last_error}") from None
        except Exception as error:
            await self.close()
            raise StoreUnavailable(describe_error(error)) from None
        for bucket in (self._members, self._channels):
            self._watchers.append(asyncio.create_task(self._watch(bucket), name="cluster-watch"))

    async def _connect(self) -> Any:
        return await nats.connect(
            self.url,
            name="ingress-egress-cluster",
            connect_timeout=REQUEST_TIMEOUT_S,
            max_reconnect_attempts=-1,  # the store comes back: keep trying, forever
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            error_cb=self._quiet,
            disconnected_cb=self._disconnected,
        )

    async def _bucket(self, js: Any, bucket: str, ttl_s: float | None) -> Any:
        try:
            return await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            pass
        config = KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, storage=StorageType.FILE)
        if ttl_s:
            # Expiry markers let watchers see a member expire (nats-server 2.11+).
            marked = KeyValueConfig(
                bucket=bucket,
                history=1,
                ttl=ttl_s,
                storage=StorageType.FILE,
                limit_marker_ttl=max(1.0, ttl_s),
            )
            with contextlib.suppress(nats.js.errors.KeyValueLimitMarkerTTLNotSupportedError):
                return await js.create_key_value(marked)
        return await js.create_key_value(config)

    async def _watch(self, bucket: Any) -> None:
        """Wake the coordinator on any change; re-watch after errors (the view is polled
        anyway, so a gap here only delays a rebalance)."""
        while True:
            try:
                watcher = await bucket.watchall(meta_only=True)
                try:
                    async for _entry in watcher:
                        self._changed.set()
                finally:
                    with contextlib.suppress(Exception):
                        await watcher.stop()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # server restarting: try again shortly
                log.debug("cluster watch interrupted: %s", describe_error(error))
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), REQUEST_TIMEOUT_S)
            self._nc = None
        self._js = None

    @property
    def _member_bucket(self) -> Any:
        if self._members is None or self._nc is None:
            raise StoreUnavailable("not connected")
        return self._members

    @property
    def _channel_bucket(self) -> Any:
        if self._channels is None or self._nc is None:
            raise StoreUnavailable("not connected")
        return self._channels

    # -- members --------------------------------------------------------------------

    async def heartbeat(self, beat: Heartbeat) -> None:
        await self._call(self._member_bucket.put(beat.instance_id, beat.encode()))

    async def leave(self, instance_id: str) -> None:
        await self._call(self._member_bucket.purge(instance_id))

    async def members(self) -> dict[str, Member]:
        keys = await self._call(self._keys(self.members_bucket))
        out: dict[str, Member] = {}
        for key in keys:
            try:
                entry = await self._call(self._member_bucket.get(key))
            except _Missing:
                continue  # expired or left between listing and reading
            beat = _decode_beat(entry.value)
            if beat is not None:
                out[key] = Member(key, frozenset(beat.joined), beat.seq)
        return out

    async def _keys(self, bucket: str) -> list[str]:
        """The bucket's keys, from one stream-info request listing its subjects.

        Not ``KeyValue.keys()``: that creates an ephemeral consumer per call, and under load
        it was seen to end its listing early (an empty view for one round, which made a
        member claim every channel). Deleted keys are listed too; ``get`` skips them.
        """
        if self._js is None:
            raise StoreUnavailable("not connected")
        prefix = f"$KV.{bucket}."
        info = await self._js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
        return [subject[len(prefix) :] for subject in (info.state.subjects or {})]

    # -- the wanted list ------------------------------------------------------------

    async def wanted(self) -> tuple[str, ...] | None:
        try:
            entry = await self._call(self._channel_bucket.get(WANTED_KEY))
        except _Missing:
            return None
        return _decode_channels(entry.value)

    async def seed_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        try:
            await self._call(self._channel_bucket.create(WANTED_KEY, _encode_channels(channels)))
            return channels
        except _Exists:
            current = await self.wanted()
            return current if current is not None else channels

    async def change_wanted(self, add: tuple[str, ...], remove: tuple[str, ...]) -> tuple[str, ...]:
        return await self._compare_and_set(lambda current: apply_change(current, add, remove))

    async def replace_wanted(self, channels: tuple[str, ...]) -> tuple[str, ...]:
        await self._call(self._channel_bucket.put(WANTED_KEY, _encode_channels(channels)))
        return channels

    async def _compare_and_set(self, change: Any) -> tuple[str, ...]:
        for _ in range(CAS_ATTEMPTS):
            try:
                entry = await self._call(self._channel_bucket.get(WANTED_KEY))
            except _Missing:
                new = change(())
                try:
                    await self._call(self._channel_bucket.create(WANTED_KEY, _encode_channels(new)))
                    return new
                except _Exists:
                    await contention_pause()
                    continue
            new = change(_decode_channels(entry.value) or ())
            try:
                await self._call(
                    self._channel_bucket.update(
                        WANTED_KEY, _encode_channels(new), last=entry.revision
                    )
                )
                return new
            except _Exists:  # somebody else changed it meanwhile: read again
                await contention_pause()
        raise StoreUnavailable("the wanted list kept changing under us; try again")

    # -- errors ---------------------------------------------------------------------

    async def _call(self, awaitable: Any) -> Any:
        return await kv_call(
            awaitable,
            timeout_s=REQUEST_TIMEOUT_S,
            exists=_Exists,
            unavailable=StoreUnavailable,
            missing=_Missing,
        )

    async def _quiet(self, error: Exception) -> None:
        self._last_error = describe_error(error)
        log.debug("cluster store connection: %s", describe_error(error))

    async def _disconnected(self) -> None:
        self._changed.set()  # let the coordinator notice at once


class _Missing(StoreUnavailable):
    """No such key (caught where absence is an answer; anywhere else, a failure)."""


class _Exists(StoreUnavailable):
    """A compare-and-set lost: somebody else wrote first."""


def _encode_channels(channels: tuple[str, ...]) -> bytes:
    return json.dumps({"channels": list(channels)}, separators=(",", ":")).encode()


def _decode_channels(data: bytes | None) -> tuple[str, ...] | None:
    try:
        body = json.loads(data or b"")
        return tuple(str(c) for c in body["channels"])
    except (ValueError, KeyError, TypeError):
        log.error("cluster wanted list is not valid JSON; ignoring it")
        return None


def _decode_beat(data: bytes | None) -> Heartbeat | None:
    try:
        return Heartbeat.decode(data or b"")
    except (ValueError, KeyError, TypeError):
        return None
