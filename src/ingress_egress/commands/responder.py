"""The demo's RESPONDER: a stand-in for the platform's Router -> ... -> Finalizer chain.

Not part of the service and not how the platform decides anything: ``make demo`` runs it so
the round trip can be seen on one machine. It reads ``internal.ingress.v1`` and answers each
viewer's ``!ping`` with an egress command (docs/egress.md) on ``internal.egress.v1``, which
the service then sends into chat as the bot:

    viewer: !ping -> service -> internal.ingress.v1 -> RESPONDER -> internal.egress.v1
      -> service (as the bot) -> chat -> service -> internal.ingress.v1 (payload.isSelf)
      and the command's result -> internal.finalizer.v1

The bot's own messages (``payload.isSelf``) are never answered, so it cannot talk to itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from ingress_egress.egress.result import iso_time

log = logging.getLogger("ingress_egress.responder")

PING = "!ping"
CHAT_MESSAGE = "external.chat.message.v1"
EGRESS_TYPE = "egress.chat.message.v1"
STREAM_POLL_S = 0.1  # while the service is still creating its streams
PUBLISH_TIMEOUT_S = 5.0


def answer_for(envelope: dict[str, Any], now: float | None = None) -> dict[str, Any] | None:
    """The egress command answering ``envelope``, or None when it is not a viewer's
    ``!ping`` (another event, other text, or the bot's own message)."""
    if envelope.get("type") != CHAT_MESSAGE:
        return None
    payload = envelope.get("payload") or {}
    if payload.get("isSelf") or str(payload.get("text") or "").strip().lower() != PING:
        return None
    source, user = envelope["source"], envelope.get("user") or {}
    target = {"platform": "twitch", "channel": source["channel"]}
    if source.get("channelId"):
        target["channelId"] = source["channelId"]
    who = user.get("displayName") or user.get("name") or "chat"
    return {
        "v": "1",
        "id": str(uuid.uuid4()),
        "correlationId": envelope.get("correlationId") or envelope["id"],
        "traceId": envelope.get("traceId") or uuid.uuid4().hex,
        "timestamp": iso_time(time.time() if now is None else now),
        "type": EGRESS_TYPE,
        "target": target,
        "payload": {"text": f"pong @{who}", "replyTo": payload.get("messageId"), "isAction": False},
        "finalizationDestination": "internal.finalizer.v1",
    }


@dataclass
class ResponderCounts:
    answered: int = 0
    unreadable: int = 0  # ingress messages that were not JSON envelopes (skipped)
    failed: int = 0  # answers that could not be published (logged, skipped)


Answered = Callable[[dict[str, Any], dict[str, Any]], None]  # (ping envelope, command)


class PingResponder:
    """Subscribes to the ingress subject once the service has created its streams, and
    publishes one egress command per ``!ping``; a bad message is counted, never fatal."""

    def __init__(
        self,
        nats_url: str,
        *,
        ingress_subject: str,
        egress_subject: str,
        on_answer: Answered | None = None,
    ) -> None:
        self.nats_url = nats_url
        self.ingress_subject = ingress_subject
        self.egress_subject = egress_subject
        self.on_answer = on_answer
        self.counts = ResponderCounts()

    async def run(self) -> None:
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            # The service creates both streams (the egress one when it starts sending);
            # commands published before that would have nowhere to go.
            await _stream_for(nc, self.ingress_subject)
            await _stream_for(nc, self.egress_subject)
            sub = await js.subscribe(
                self.ingress_subject, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
            )
            async for msg in sub.messages:
                await self._handle(js, msg.data)
        finally:
            await nc.close()

    async def _handle(self, js: Any, data: bytes) -> None:
        try:
            envelope = orjson.loads(data)
            command = answer_for(envelope)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            self.counts.unreadable += 1
            log.warning("responder: skipped an unreadable ingress message (%s)", exc)
            return
        if command is None:
            return
        try:
            await js.publish(
                self.egress_subject,
                orjson.dumps(command),
                timeout=PUBLISH_TIMEOUT_S,
                headers={"Nats-Msg-Id": command["id"]},
            )
        except (TimeoutError, nats.errors.Error) as exc:
            self.counts.failed += 1
            log.warning("responder: could not publish an answer (%s)", exc)
            return
        self.counts.answered += 1
        if self.on_answer is not None:
            self.on_answer(envelope, command)


async def _stream_for(nc: Client, subject: str) -> str:
    """The name of the stream capturing ``subject``, once there is one."""
    js = nc.jetstream()
    while True:
        try:
            return await js.find_stream_name_by_subject(subject)
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(STREAM_POLL_S)
