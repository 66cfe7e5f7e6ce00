"""NATS JetStream driver: acked publishes, server-side de-duplication by ``Nats-Msg-Id``.

At start the stream covering the subject is created when missing (``NATS_STREAM``), with a
de-duplication window so that retries, spool replays and overlapping connections store
each Twitch message once.

Two ack modes (``NATS_ACK_MODE``):

* ``each``: every message is a JetStream publish with its own ack (nats-py
  ``publish_async``). Simple, but each ack costs ~40 us of client CPU on a small machine.
* ``batch`` (default): messages go out as plain publishes to the stream's subject and the
  last one of each batch (``NATS_ACK_BATCH`` messages, or whatever is pending after
  ``NATS_ACK_LINGER_MS``) is published *again*, with the same ``Nats-Msg-Id``, as an acked
  JetStream publish. The server processes one connection's messages to a stream in order and
  de-duplicates the repeat, so that ack (a "barrier") confirms the whole batch. If it fails
  or never comes, every message of the batch fails and the pipeline re-sends them; the
  de-duplication window makes those re-sends idempotent.

Order across reconnects: TCP hands the server a prefix of what was written on a connection,
so what JetStream stored from it is a prefix too. The driver keeps it that way: it never
buffers publishes while disconnected (nats-py's reconnect buffer would replay a *later* part
of the stream before the pipeline re-sends the lost part) and drops what nats-py still held
unsent when the connection broke; outstanding acks fail at once, and the pipeline re-sends
from the oldest unacknowledged envelope, in order (docs/delivery.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NoStreamResponseError, NotFoundError

from ingress_egress import _native
from ingress_egress.bus.base import BusError, Publisher, SendResult
from ingress_egress.envelope import OutboundMessage

log = logging.getLogger("ingress_egress.bus.nats")

_NEWLINES = str.maketrans({"\r": " ", "\n": " "})

# nats-py's Client names this driver reads or writes that are not its public API: the write
# buffer its flusher drains (``_hand_over``, ``_on_disconnected``) and the back-pressure
# limit. tests/test_third_party_pins.py checks the installed version still has each.
NATS_PY_PRIVATE_NAMES = (
    "_pending",  # list[bytes]: frames written by the flusher, in order
    "_pending_data_size",  # int: their bytes
    "_max_pending_size",  # int: the buffer limit (``pending_size``)
    "_flush_queue",  # asyncio.Queue: a future put there wakes the flusher
    "_flush_pending",  # coroutine(force_flush=...): wait until the buffer is written
)


def _header_value(value: str) -> bytes:
    """As nats-py does: trimmed, CR/LF become spaces (a header value cannot break the frame)."""
    return value.strip().translate(_NEWLINES).encode()


def hpub_frame(subject: bytes, message: OutboundMessage) -> bytes:
    """The NATS ``HPUB`` command for one envelope, byte-identical to what nats-py's
    ``publish(subject, data, headers=...)`` sends (tests/test_bus_nats.py compares them).

    Built here because nats-py's header encoding (a regex per key, several copies) costs
    ~13 us per message on this service's small machines: a third of the publish path.
    """
    header = b"NATS/1.0\r\nNats-Msg-Id: %b\r\ntraceparent: %b\r\nEnvelope-Type: %b\r\n\r\n" % (
        _header_value(message.dedup_id),
        _header_value(message.traceparent),
        _header_value(message.type),
    )
    data = message.data
    # "HPUB <subject> <reply> <header size> <total size>" with an empty reply, as nats-py.
    return b"HPUB %b  %d %d\r\n%b%b\r\n" % (
        subject,
        len(header),
        len(header) + len(data),
        header,
        data,
    )


def _headers(message: OutboundMessage) -> dict[str, str]:
    """The headers of an acked publish (each mode, batch barriers): the same as the frames'."""
    return {
        "Nats-Msg-Id": message.dedup_id,
        "traceparent": message.traceparent,
        "Envelope-Type": message.type,
    }


# The C twin (untyped, hence Any), bound once; None without the extension.
_hpub_frames_c: Any = getattr(_native.speedups, "hpub_frames", None)


def _frame_c_or_python(subject: bytes, message: OutboundMessage) -> bytes:
    """The C twin's frame (about 10x cheaper), or the reference's when the twin declines
    (a header value the reference normalizes, a value of another type)."""
    frame = _hpub_frames_c(subject, [message])
    return frame if frame is not None else hpub_frame(subject, message)


frame_for = _frame_c_or_python if _hpub_frames_c is not None else hpub_frame


def hpub_frames(subject: bytes, messages: list[OutboundMessage]) -> bytes:
    """The frames of a slice, one after another: what the batch mode hands nats-py."""
    return b"".join([frame_for(subject, message) for message in messages])


def _frames_c_or_python(subject: bytes, messages: list[OutboundMessage]) -> bytes:
    """The C twin builds the whole slice in one buffer; it declines (None) when any message
    needs the reference, and the slice is then framed one by one."""
    frames = _hpub_frames_c(subject, messages)
    return frames if frames is not None else hpub_frames(subject, messages)


frames_for = _frames_c_or_python if _hpub_frames_c is not None else hpub_frames


# How long JetStream remembers a Nats-Msg-Id. A re-send is de-duplicated only within it, so
# it bounds how long an outage may last before a batch whose ack was lost (at most
# PUBLISH_MAX_IN_FLIGHT envelopes) could be stored twice on recovery (docs/delivery.md).
DUPLICATE_WINDOW_S = 300.0
# Each-mode sends wait at most this long for a free slot among the outstanding acks; then
# the send fails (and is retried) instead of stalling the sender forever.
STALL_WAIT_S = 5.0
SIDE_PUBLISH_TIMEOUT_S = 5.0
BARRIER_ACK_TIMEOUT_S = 15.0


class NatsPublisher(Publisher):
    name = "nats"

    def __init__(
        self,
        url: str,
        subject: str,
        stream: str,
        *,
        extra_subjects: tuple[str, ...] = (),
        max_pending: int = 4096,
        connect_timeout_s: float = 5.0,
        ack_mode: str = "batch",
        ack_batch: int = 256,
        ack_linger_s: float = 0.002,
        duplicate_window_s: float = DUPLICATE_WINDOW_S,
        native_framing: bool = True,
    ) -> None:
        self.url = url
        self.subject = subject
        self.stream = stream
        self.subjects = (subject, *extra_subjects)
        self._subject_bytes = subject.encode()
        self.max_pending = max_pending
        self.connect_timeout_s = connect_timeout_s
        self._nc: Client | None = None
        self._first_refusal: asyncio.Event | None = None  # set by an OSError while connecting
        self._js: JetStreamContext | None = None
        self.last_error = ""
        self._closing = False
        self.ack_mode = ack_mode
        self.ack_batch = max(1, ack_batch)
        self.ack_linger_s = ack_linger_s
        self.duplicate_window_s = duplicate_window_s
        # INGRESS_EGRESS_PURE_PYTHON: the reference framing even where the C twin is loaded.
        self._frame_for = frame_for if native_framing else hpub_frame
        self._frames_for = frames_for if native_framing else hpub_frames
        self._batch: asyncio.Future[Any] | None = None  # shared by the open batch's messages
        self._batch_size = 0
        self._batch_last: OutboundMessage | None = None  # the batch's barrier repeats it
        self._out: list[bytes] = []  # frames not yet handed to nats-py (see _hand_over)
        self._out_bytes = 0
        self._out_payload = 0
        self._out_messages = 0
        self._linger: asyncio.TimerHandle | None = None
        self._barriers: set[asyncio.Task[None]] = set()
        self._awaiting: set[asyncio.Future[Any]] = set()  # batches whose barrier is out

    async def start(self) -> None:
        try:
            # nats-py retries the first connect forever when reconnects are unlimited:
            # bound it here; the service retries start() with backoff.
            self.last_error = ""
            self._nc = await asyncio.wait_for(self._connect(), self.connect_timeout_s * 2)
        except (OSError, TimeoutError, NatsError) as error:
            reason = str(error) or type(error).__name__
            if isinstance(error, TimeoutError) and self.last_error:
                reason = self.last_error  # why the attempts failed, not that they took long
            raise BusError(f"cannot connect to NATS at {_safe_url(self.url)}: {reason}") from error
        self._js = self._nc.jetstream(publish_async_max_pending=self.max_pending)
        await self._ensure_stream()

    async def _connect(self) -> Client:
        """nats-py retries a refused first connect until the timeout; with one server, the
        first OSError (connection refused, no route) ends the attempt at once with that
        reason (with several, another may still answer)."""
        if "," in self.url:
            return await self._open()
        self._first_refusal = refused = asyncio.Event()
        connecting = asyncio.ensure_future(self._open())
        waiting = asyncio.ensure_future(refused.wait())
        try:
            await asyncio.wait([connecting, waiting], return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            self._first_refusal = None
        if connecting.done():
            return connecting.result()
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        raise OSError(self.last_error)

    async def _open(self) -> Client:
        return await nats.connect(
            servers=[part.strip() for part in self.url.split(",")],
            name="ingress-egress",
            connect_timeout=self.connect_timeout_s,
            max_reconnect_attempts=-1,  # keep trying forever; the pipeline retries
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )

    async def _ensure_stream(self) -> None:
        try:
            await self._create_or_extend_stream()
        except NatsError as error:
            raise BusError(f"JetStream stream {self.stream}: {error}") from error

    async def _create_or_extend_stream(self) -> None:
        assert self._js is not None
        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=list(self.subjects),
                    duplicate_window=self.duplicate_window_s,
                )
            )
            log.info("created JetStream stream %s for %s", self.stream, ", ".join(self.subjects))
            return
        covered = set(info.config.subjects or [])
        missing = [s for s in self.subjects if s not in covered]
        too_short = (info.config.duplicate_window or 0) < self.duplicate_window_s
        if missing or too_short:
            info.config.subjects = [*(info.config.subjects or []), *missing]
            if too_short:
                info.config.duplicate_window = self.duplicate_window_s
            await self._js.update_stream(info.config)
            log.info(
                "JetStream stream %s updated: subjects %s, duplicate window %.0fs",
                self.stream,
                ", ".join(info.config.subjects),
                self.duplicate_window_s,
            )

    async def send(self, message: OutboundMessage) -> asyncio.Future[Any]:
        nc = self._nc
        if self._js is None or nc is None:
            raise BusError("NATS publisher not started")
        if not nc.is_connected:
            # Never into nats-py's reconnect buffer: see _on_disconnected.
            raise BusError("NATS not connected")
        if len(message.data) > nc.max_payload:
            raise BusError(
                f"envelope of {len(message.data)} bytes exceeds NATS max_payload "
                f"({nc.max_payload})",
                permanent=True,
            )
        if self.ack_mode == "each":
            try:
                return await self._js.publish_async(
                    self.subject, message.data, headers=_headers(message), wait_stall=STALL_WAIT_S
                )
            except NatsError as error:
                raise BusError(f"NATS publish failed: {error}") from error
        if nc.is_closed or nc.is_draining_pubs:
            raise BusError("NATS connection closed or draining")
        runs = await self._queue(nc, self._frame_for(self._subject_bytes, message), [message])
        return runs[0][0]

    async def send_many(self, messages: Sequence[OutboundMessage]) -> SendResult:
        """Batch mode: the slice's frames in one go, its messages assigned to ack batches
        in runs (``send`` does the same per message; each mode uses it as it is)."""
        nc = self._nc
        if self.ack_mode == "each" or nc is None or not messages:
            return await super().send_many(messages)
        if self._js is None:
            return [], BusError("NATS publisher not started")
        if not nc.is_connected:
            return [], BusError("NATS not connected")  # never into nats-py's reconnect buffer
        if nc.is_closed or nc.is_draining_pubs:
            return [], BusError("NATS connection closed or draining")
        limit = nc.max_payload
        if max(len(message.data) for message in messages) > limit:
            return await super().send_many(messages)  # rare: rejected one by one
        frames = self._frames_for(self._subject_bytes, list(messages))
        return await self._queue(nc, frames, messages), None

    async def _queue(
        self, nc: Client, frames: bytes, messages: Sequence[OutboundMessage]
    ) -> list[tuple[asyncio.Future[Any], int]]:
        """Queue the messages' frames for the next hand-over and assign them to ack batches:
        the runs. Waits only on nats-py's own back-pressure (its pending buffer full)."""
        out = self._out
        out.append(frames)
        self._out_bytes += len(frames)
        self._out_payload += sum([len(message.data) for message in messages])
        self._out_messages += len(messages)
        if len(out) == 1:
            asyncio.get_running_loop().call_soon(self._hand_over)
        runs = self._assign(messages)
        if nc._pending_data_size + self._out_bytes > nc._max_pending_size > 0:
            self._hand_over()  # wait until its flusher has written what it holds
            await nc._flush_pending(force_flush=True)
        return runs

    def _assign(self, messages: Sequence[OutboundMessage]) -> list[tuple[asyncio.Future[Any], int]]:
        """Spread sent messages over ack batches (``NATS_ACK_BATCH`` each): the runs."""
        loop = asyncio.get_running_loop()
        runs: list[tuple[asyncio.Future[Any], int]] = []
        start, end = 0, len(messages)
        while start < end:
            future = self._batch
            if future is not None and future.done():  # given up by the pipeline (cancelled)
                self._close_batch()
                future = None
            if future is None:
                future = self._batch = loop.create_future()
                self._linger = loop.call_later(self.ack_linger_s, self._close_batch)
            take = min(end - start, self.ack_batch - self._batch_size)
            start += take
            self._batch_size += take
            self._batch_last = messages[start - 1]
            runs.append((future, take))
            if self._batch_size >= self.ack_batch:
                self._close_batch()
        return runs

    def _hand_over(self) -> None:
        """Give nats-py the frames sent since the last hand-over as one pending write and
        wake its flusher: once per burst instead of two coroutines per message. Frames
        that find the connection down are dropped with their batch failed (the pipeline
        re-sends from the oldest unacknowledged), never queued for a reconnect."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        count, payload = self._out_messages, self._out_payload
        out.clear()
        self._out_bytes = self._out_payload = self._out_messages = 0
        nc = self._nc
        if nc is None or not nc.is_connected:
            self._fail_open_batch(BusError("NATS not connected"))
            return
        nc._pending.append(data)  # nats-py private names: NATS_PY_PRIVATE_NAMES
        nc._pending_data_size += len(data)
        nc.stats["out_msgs"] += count
        nc.stats["out_bytes"] += payload
        flush = nc._flush_queue
        if flush is not None and flush.empty():
            flush.put_nowait(asyncio.get_running_loop().create_future())

    def _fail_open_batch(self, error: BusError) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        batch, self._batch, self._batch_last, self._batch_size = self._batch, None, None, 0
        if batch is not None and not batch.done():
            batch.set_exception(error)
            batch.exception()  # seen: a future nobody awaits any more logs nothing

    def _close_batch(self) -> None:
        self._hand_over()  # the batch's frames go before its barrier
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        batch, last = self._batch, self._batch_last
        self._batch, self._batch_last, self._batch_size = None, None, 0
        if batch is not None and last is not None:
            self._awaiting.add(batch)
            batch.add_done_callback(self._awaiting.discard)
            task = asyncio.ensure_future(self._barrier(batch, last.data, _headers(last)))
            self._barriers.add(task)
            task.add_done_callback(self._barriers.discard)

    async def _barrier(self, batch: asyncio.Future[Any], data: bytes, headers: dict) -> None:
        """Re-publish the batch's last message with an ack; its ack settles the batch."""
        error: BaseException | None = None
        ack: Any = None
        try:
            assert self._js is not None and self._nc is not None
            if not self._nc.is_connected:
                raise BusError("NATS not connected")
            acked = await self._js.publish_async(
                self.subject, data, headers=dict(headers), wait_stall=STALL_WAIT_S
            )
            # Bounded: an ack lost with the connection would otherwise hold one of nats-py's
            # outstanding-ack slots forever (wait_for cancels it, which frees the slot).
            ack = await asyncio.wait_for(acked, BARRIER_ACK_TIMEOUT_S)
        except asyncio.CancelledError:
            error = BusError("publisher closed before the batch was acknowledged")
        except Exception as failure:
            error = BusError(f"JetStream batch ack failed: {failure}")
        if batch.done():  # timed out by the pipeline meanwhile
            return
        if error is None:
            batch.set_result(ack)
        else:
            batch.set_exception(error)

    async def publish_to(
        self, destination: str, data: bytes, *, message_id: str, event_type: str
    ) -> None:
        """An acked JetStream publish: a subject no stream covers is unreachable (permanent)."""
        js = self._js
        if js is None:
            raise BusError("NATS publisher not started")
        headers = {"Nats-Msg-Id": message_id, "Envelope-Type": event_type}
        try:
            await js.publish(destination, data, timeout=SIDE_PUBLISH_TIMEOUT_S, headers=headers)
        except NoStreamResponseError as error:
            raise BusError(f"no JetStream stream covers {destination}", permanent=True) from error
        except MaxPayloadError as error:
            raise BusError(f"{len(data)} bytes exceed NATS max_payload", permanent=True) from error
        except (NatsError, TimeoutError) as error:
            reason = str(error) or type(error).__name__
            raise BusError(f"NATS publish to {destination} failed: {reason}") from error

    async def close(self) -> None:
        self._closing = True
        if self._js is not None:
            self._close_batch()
            if self._barriers:
                await asyncio.wait(self._barriers, timeout=5)
        nc, self._nc = self._nc, None
        self._js = None
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), 5)
            except (TimeoutError, NatsError):
                await nc.close()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "subject": self.subject,
            "stream": self.stream,
            "ackMode": self.ack_mode,
            "lastError": self.last_error,
        }

    async def _on_error(self, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        if self._nc is None and self._first_refusal is not None and isinstance(error, OSError):
            self._first_refusal.set()  # nothing listens: say so now, not at the timeout

    async def _on_disconnected(self) -> None:
        """The connection broke: drop what nats-py has not written yet (sent after a reconnect
        it would land *before* the re-sent remainder of what the broken connection lost) and
        fail every outstanding ack now, so the pipeline re-sends in order without waiting
        for ack timeouts."""
        if self._closing:
            return
        log.warning("NATS disconnected; reconnecting")
        nc = self._nc
        self._out.clear()
        self._out_bytes = self._out_payload = self._out_messages = 0
        if nc is not None:  # nats-py private names, as in _hand_over
            nc._pending = []
            nc._pending_data_size = 0
        lost = BusError("NATS connection lost before the ack")
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        batch, self._batch, self._batch_last, self._batch_size = self._batch, None, None, 0
        outstanding = [batch, *self._awaiting]
        if self._js is not None:
            outstanding += list(getattr(self._js, "_publish_async_futures", {}).values())
        for future in outstanding:
            if future is not None and not future.done():
                future.set_exception(lost)
                future.exception()  # seen: a future nobody awaits any more logs nothing

    async def _on_reconnected(self) -> None:
        log.info("NATS reconnected")


def _safe_url(url: str) -> str:
    """NATS URLs may carry user:password@; never print them."""
    parts = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        parts.append(f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else part)
    return ",".join(parts)
