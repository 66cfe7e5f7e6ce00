"""The ``/_debug/twitch`` document: everything an operator needs, never a secret."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ingress_egress.bus.base import Publisher
from ingress_egress.cluster import ClusterCoordinator
from ingress_egress.credentials import CredentialsProvider
from ingress_egress.egress.runner import EgressRunner
from ingress_egress.pipeline import Pipeline
from ingress_egress.sources.base import ChatSource
from ingress_egress.sources.irc.codec import IrcCodec
from ingress_egress.status import Counters, ErrorLog


def hot_path(codec: IrcCodec | None) -> str:
    """Which implementation parses and builds envelopes: a deployment silently running the
    pure-Python reference (about 9x slower per chat line: 22 us against 2.6 us in
    ``bench/bench_lines.py``, 2026-12-06) must be visible. ``codec``: the IRC source's
    (None for the EventSub source, whose events are converted in Python)."""
    if codec is not None and codec.name == "native":
        return "C (native codec)"
    return "pure Python"


class DebugSnapshot:
    def __init__(
        self,
        *,
        source: ChatSource,
        endpoint: str,
        codec: IrcCodec | None,
        counters: Counters,
        errors: ErrorLog,
        publisher: Publisher,
        pipeline: Pipeline,
        credentials: CredentialsProvider | None,
        cluster: ClusterCoordinator | None,
        egress: EgressRunner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.endpoint = endpoint
        self.hot_path = hot_path(codec)
        self.counters = counters
        self.errors = errors
        self.publisher = publisher
        self.pipeline = pipeline
        self.credentials = credentials
        self.cluster = cluster
        self.egress = egress
        self._clock = clock
        self._started_at = clock()

    def document(self, http: dict[str, Any]) -> dict[str, Any]:
        """The document; ``http``: the HTTP server's connection figures."""
        chat = self.source.snapshot()
        snapshot = {
            "connected": chat.connected,
            "wantedChannels": list(chat.reading),  # what this source reads (a member: its share)
            "joinedChannels": sorted(chat.joined),
            "pendingChannels": list(chat.pending),
            "failedChannels": dict(chat.failed_channels),
            "lastReconnectAt": chat.last_reconnect_at,
            "reconnects": chat.reconnects,
            "counters": self.counters.as_dict(),
            "lastError": self.errors.last,
            "recentErrors": list(self.errors.entries),
            "transport": chat.transport,
            "identity": chat.identity,
            "endpoint": self.endpoint,
            "bus": self.publisher.describe(),
            "queue": self.pipeline.describe(),  # depth, inFlight, spool, deadLetters
            "publishLatencyMs": self.pipeline.latency.summary_ms(),
            "credentials": self.credentials.status() if self.credentials else None,
            "uptimeSeconds": round(self._clock() - self._started_at, 1),
            "hotPath": self.hot_path,
            "connections": self.source.connections(),
            "http": http,  # open connections, cap, refused, timed out
        }
        if self.cluster is not None:
            snapshot["cluster"] = self.cluster.describe()
        snapshot[self.source.debug_section] = self.source.describe()
        if self.egress is not None:
            snapshot["egress"] = self.egress.describe()
        return snapshot
