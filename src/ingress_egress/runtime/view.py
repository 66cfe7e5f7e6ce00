"""What the HTTP app reads (``http.app.ServiceView``), from the runtime parts."""

from __future__ import annotations

from typing import Any, Protocol

from ingress_egress.runtime.debug import DebugSnapshot
from ingress_egress.runtime.heartbeat import LoopHeartbeat
from ingress_egress.runtime.readiness import Readiness


class HttpServer(Protocol):
    def stats(self) -> dict[str, Any]:
        """Open connections, the cap, refused and timed-out connections."""


class StatusView:
    def __init__(
        self, readiness: Readiness, debug: DebugSnapshot, heartbeat: LoopHeartbeat
    ) -> None:
        self._readiness = readiness
        self._debug = debug
        self._heartbeat = heartbeat
        # The HTTP server is built from the app that serves this view, so it is attached
        # once built (the debug document shows its connection figures).
        self.server: HttpServer | None = None

    def readiness(self) -> list[str]:
        return self._readiness.reasons()

    def debug_snapshot(self) -> dict[str, Any]:
        http = self.server.stats() if self.server is not None else {}
        return self._debug.document(http)

    def loop_lag_s(self) -> float:
        return self._heartbeat.loop_lag_s()
