"""The bus, started with retries until it answers; ``error`` says why it is not up."""

from __future__ import annotations

import asyncio
import logging

from ingress_egress.bus.base import BusError, Publisher
from ingress_egress.retry import Backoff
from ingress_egress.status import ErrorLog

log = logging.getLogger("ingress_egress.service")


class BusConnection:
    def __init__(self, publisher: Publisher, errors: ErrorLog) -> None:
        self.publisher = publisher
        self.errors = errors
        self.error = "connecting"  # "" once started

    async def connect(self) -> None:
        backoff = Backoff(0.5, 15.0)
        while True:
            try:
                await self.publisher.start()
                self.error = ""
                return
            except Exception as error:  # a driver bug must not kill start-up silently
                if not isinstance(error, BusError):
                    log.exception("bus start failed unexpectedly")
                self.error = str(error) or type(error).__name__
                self.errors.add("bus_unavailable", str(error))
                delay = backoff.next_delay()
                log.error("bus not available (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)

    def readiness(self) -> list[str]:
        if self.publisher.connected:
            return []
        return [f"bus not connected ({self.error or 'disconnected'})"]
