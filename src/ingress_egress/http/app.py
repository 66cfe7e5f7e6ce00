"""Routes, composed explicitly. Handlers read state through ``ServiceView`` only."""

from __future__ import annotations

import hmac
from typing import Any, Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ingress_egress.sources.base import ChannelsUnavailable
from ingress_egress.twitch.logins import channel_login

LIVENESS_MAX_LAG_S = 5.0


class ServiceView(Protocol):
    def readiness(self) -> list[str]:
        """Reasons the service is not ready; empty when it is."""

    def debug_snapshot(self) -> dict[str, Any]:
        """The ``/_debug/twitch`` document (never a secret)."""

    def loop_lag_s(self) -> float:
        """Seconds since the event-loop heartbeat last ran late or on time."""


# A channel change that cannot be made now (the cluster store is unreachable): 503.
AdminUnavailable = ChannelsUnavailable


class ChannelAdmin(Protocol):
    def channel_listing(self) -> dict[str, Any]:
        """Wanted, joined, pending and failed channels."""

    async def change_channels(self, add: list[str], remove: list[str]) -> Any:
        """Apply a change; returns an object with ``added``, ``removed``, ``wanted``.
        Raises ``AdminUnavailable`` when it cannot be made now."""


ADMIN_MAX_CHANNELS = 10_000  # per request: bounded work and memory
ADMIN_MAX_BODY_BYTES = 1 << 20  # 10,000 logins of 25 characters fit with room


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
    admin: ChannelAdmin | None = None,
    admin_token: str = "",
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

    async def admin_channels(request: Request) -> JSONResponse:
        # Secure by default: without ADMIN_TOKEN the route exists but does nothing.
        if admin is None or not admin_token:
            return JSONResponse({"status": "disabled"}, status_code=403)
        if not bearer_ok(request, admin_token):
            return JSONResponse(
                {"status": "unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="admin"'},
            )
        if request.method == "GET":
            return JSONResponse(admin.channel_listing())
        body, refused = await _json_body(request)
        if refused is not None:
            return refused
        parsed = _channel_change(body)
        if isinstance(parsed, str):
            return JSONResponse({"error": parsed}, status_code=400)
        try:
            change = await admin.change_channels(*parsed)
        except AdminUnavailable as error:
            return JSONResponse({"error": str(error)}, status_code=503)
        return JSONResponse(
            {
                "added": list(change.added),
                "removed": list(change.removed),
                "wanted": list(change.wanted),
            }
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/livez", livez),
            Route("/readyz", readyz),
            Route("/metrics", prometheus),
            Route("/_debug/twitch", debug_twitch),
            Route("/_admin/channels", admin_channels, methods=["GET", "POST"]),
        ]
    )


async def _json_body(request: Request) -> tuple[Any, JSONResponse | None]:
    """(the parsed body, None) or (None, the 4xx answer): bounded in size, nesting limited
    by orjson (1024 levels; stdlib json would hit a RecursionError, a 500), and a client
    that hangs up mid-body is not an error of ours (nobody reads the answer)."""
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > ADMIN_MAX_BODY_BYTES:
                error = f"body over {ADMIN_MAX_BODY_BYTES} bytes"
                return None, JSONResponse({"error": error}, status_code=413)
            chunks.append(chunk)
    except ClientDisconnect:
        return None, JSONResponse({"error": "client disconnected"}, status_code=400)
    try:
        return orjson.loads(b"".join(chunks)), None
    except orjson.JSONDecodeError:
        error = "body must be JSON (at most 1024 levels deep)"
        return None, JSONResponse({"error": error}, status_code=400)


def _channel_change(body: Any) -> tuple[list[str], list[str]] | str:
    """``{"add": [...], "remove": [...]}`` -> normalized logins, or what is wrong with it."""
    if not isinstance(body, dict) or not set(body) <= {"add", "remove"}:
        return 'expected {"add": [logins], "remove": [logins]}'
    out: list[list[str]] = []
    for key in ("add", "remove"):
        items = body.get(key, [])
        if not isinstance(items, list) or len(items) > ADMIN_MAX_CHANNELS:
            return f"{key} must be a list of at most {ADMIN_MAX_CHANNELS} channel logins"
        logins = []
        for item in items:
            login = channel_login(item)
            if login is None:
                return f"{key}: not a Twitch channel login: {str(item)[:40]!r}"
            logins.append(login)
        out.append(logins)
    return out[0], out[1]
