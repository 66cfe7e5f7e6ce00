"""The wanted channel list from a Firestore document, polled.

The document (``collection/document``) holds an array field ``channels`` of logins. Each
time its content changes, the list replaces the wanted channels (through ``apply``, i.e.
``ChatPool.replace``); polls that find the same content do nothing, so channels added
through the admin route stay until the document changes. A missing or invalid document is
reported (error code ``channels_doc_invalid`` / ``channels_doc_unavailable``) and the
current list is kept. Polling costs one document read per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ingress_egress.status import ErrorLog
from ingress_egress.twitch.logins import channel_login

log = logging.getLogger("ingress_egress.irc.channels_doc")

MAX_CHANNELS = 100_000  # a document is at most 1 MiB anyway


class ChannelsDocumentError(ValueError):
    pass


def channels_from_document(data: dict[str, Any] | None) -> tuple[str, ...]:
    """``{"channels": ["#Foo", "bar"]}`` -> ``("foo", "bar")``; raises on anything else."""
    if data is None:
        raise ChannelsDocumentError("the document does not exist")
    items = data.get("channels")
    if not isinstance(items, list):
        raise ChannelsDocumentError("field 'channels' must be an array of channel logins")
    if len(items) > MAX_CHANNELS:
        raise ChannelsDocumentError(f"more than {MAX_CHANNELS} channels")
    out: dict[str, None] = {}
    for item in items:
        login = channel_login(item)
        if login is None:
            raise ChannelsDocumentError(f"not a Twitch channel login: {str(item)[:40]!r}")
        out.setdefault(login, None)
    return tuple(out)


class FirestoreChannelList:
    def __init__(
        self,
        client: Any,  # google.cloud.firestore.AsyncClient
        path: str,
        apply: Callable[[tuple[str, ...]], object],
        errors: ErrorLog,
        poll_interval_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.path = path
        self._document = client.document(path)
        self._apply = apply
        self.errors = errors
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.applied: tuple[str, ...] | None = None  # the last list taken from the document
        self.last_problem = ""

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_interval_s)

    async def poll_once(self) -> None:
        try:
            snapshot = await asyncio.wait_for(self._document.get(), self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # Firestore down: keep the list, say so, try again
            self._problem("channels_doc_unavailable", f"{type(error).__name__}: {error}")
            return
        try:
            channels = channels_from_document(snapshot.to_dict() if snapshot.exists else None)
        except ChannelsDocumentError as error:
            self._problem("channels_doc_invalid", str(error))
            return
        self.last_problem = ""
        if channels != self.applied:
            self.applied = channels
            self._apply(channels)
            log.info("channel list from Firestore %s: %d channels", self.path, len(channels))

    def _problem(self, code: str, message: str) -> None:
        text = f"{self.path}: {message}"
        if text != self.last_problem:  # once per distinct problem, not once per poll
            self.errors.add(code, text)
            log.error("channel document %s", text, extra={"errorCode": code})
        self.last_problem = text
