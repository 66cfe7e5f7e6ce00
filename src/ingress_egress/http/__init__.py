"""The HTTP surface: health, readiness and debug routes (Starlette on uvicorn)."""

from ingress_egress.http.app import ServiceView, build_app
from ingress_egress.http.server import EmbeddedServer

__all__ = ["EmbeddedServer", "ServiceView", "build_app"]
