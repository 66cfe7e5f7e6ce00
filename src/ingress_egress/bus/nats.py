"""NATS JetStream driver: acked publishes, server-side de-duplication by ``Nats-Msg-Id``.

At start the stream covering the subject is created when missing (``NATS_STREAM``), with a
de-duplication window so that retries, spool replays and overlapping connections store
each Twitch message once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from ingress_egress.bus.base import BusError, OutboundMessage, Publisher

log = logging.getLogger("ingress_egress.bus.nats")

DUPLICATE_WINDOW_S = 120.0


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
    ) -> None:
        self.url = url
        self.subject = subject
        self.stream = stream
        self.subjects = (subject, *extra_subjects)
        self.max_pending = max_pending
        self.connect_timeout_s = connect_timeout_s
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self.last_error = ""

    async def start(self) -> None:
        try:
            # nats-py retries the first connect forever when reconnects are unlimited:
            # bound it here; the service retries start() with backoff.
            self._nc = await asyncio.wait_for(self._connect(), self.connect_timeout_s * 2)
        except (OSError, TimeoutError, NatsError) as error:
            reason = str(error) or type(error).__name__
            raise BusError(f"cannot connect to NATS at {_safe_url(self.url)}: {reason}") from error
        self._js = self._nc.jetstream(publish_async_max_pending=self.max_pending)
        await self._ensure_stream()

    async def _connect(self) -> Client:
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
        assert self._js is not None
        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=list(self.subjects),
                    duplicate_window=DUPLICATE_WINDOW_S,
                )
            )
            log.info("created JetStream stream %s for %s", self.stream, ", ".join(self.subjects))
            return
        except NatsError as error:
            raise BusError(f"cannot read JetStream stream {self.stream}: {error}") from error
        covered = set(info.config.subjects or [])
        missing = [s for s in self.subjects if s not in covered]
        if missing:
            info.config.subjects = [*(info.config.subjects or []), *missing]
            await self._js.update_stream(info.config)
            log.info("added %s to JetStream stream %s", ", ".join(missing), self.stream)

    async def send(self, message: OutboundMessage) -> asyncio.Future[Any]:
        js = self._js
        if js is None:
            raise BusError("NATS publisher not started")
        headers = {
            "Nats-Msg-Id": message.dedup_id,
            "traceparent": message.traceparent,
            "Envelope-Type": message.type,
            "Envelope-Id": message.envelope_id,
        }
        try:
            return await js.publish_async(self.subject, message.data, headers=headers)
        except NatsError as error:
            raise BusError(f"NATS publish failed: {error}") from error

    async def close(self) -> None:
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
            "lastError": self.last_error,
        }

    async def _on_error(self, error: Exception) -> None:
        self.last_error = f"{type(error).__name__}: {error}"

    async def _on_disconnected(self) -> None:
        log.warning("NATS disconnected; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("NATS reconnected")


def _safe_url(url: str) -> str:
    """NATS URLs may carry user:password@; never print them."""
    parts = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        parts.append(f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else part)
    return ",".join(parts)
