"""The HTTP surface: health, readiness and debug routes (Starlette on uvicorn)."""

from ingress_egress.http.app import AdminUnavailable, ServiceView, build_app
from ingress_egress.http.server import EmbeddedServer

__all__ = ["AdminUnavailable", "EmbeddedServer", "ServiceView", "build_app"]
