"""Routes, composed explicitly. Handlers read state through ``ServiceView`` only."""

from __future__ import annotations

from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

LIVENESS_MAX_LAG_S = 5.0


class ServiceView(Protocol):
    def readiness(self) -> list[str]:
        """Reasons the service is not ready; empty when it is."""

    def debug_snapshot(self) -> dict[str, Any]:
        """The ``/_debug/twitch`` document (never a secret)."""

    def loop_lag_s(self) -> float:
        """Seconds since the event-loop heartbeat last ran late or on time."""


def build_app(view: ServiceView) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def livez(_: Request) -> JSONResponse:
        lag = view.loop_lag_s()
        alive = lag < LIVENESS_MAX_LAG_S
        body = {"status": "ok" if alive else "stalled", "loopLagSeconds": round(lag, 3)}
        return JSONResponse(body, status_code=200 if alive else 503)

    async def readyz(_: Request) -> JSONResponse:
        reasons = view.readiness()
        if reasons:
            return JSONResponse({"status": "not ready", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def debug_twitch(_: Request) -> JSONResponse:
        return JSONResponse(view.debug_snapshot())

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/_debug/twitch", debug_twitch),
        ]
    )
