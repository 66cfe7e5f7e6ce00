"""Routes, composed explicitly. Handlers read state through ``ServiceView`` only."""

from __future__ import annotations

import hmac
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LIVENESS_MAX_LAG_S = 5.0


class ServiceView(Protocol):
    def readiness(self) -> list[str]:
        """Reasons the service is not ready; empty when it is."""

    def debug_snapshot(self) -> dict[str, Any]:
        """The ``/_debug/twitch`` document (never a secret)."""

    def loop_lag_s(self) -> float:
        """Seconds since the event-loop heartbeat last ran late or on time."""


def bearer_ok(request: Request, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time. No token: open."""
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def build_app(
    view: ServiceView,
    *,
    metrics: CollectorRegistry | None = None,
    debug_token: str = "",
) -> Starlette:
    registry = metrics if metrics is not None else CollectorRegistry(auto_describe=False)

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

    async def debug_twitch(request: Request) -> JSONResponse:
        if not bearer_ok(request, debug_token):
            return JSONResponse(
                {"status": "unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="debug"'},
            )
        return JSONResponse(view.debug_snapshot())

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
            Route("/_debug/twitch", debug_twitch),
        ]
    )
