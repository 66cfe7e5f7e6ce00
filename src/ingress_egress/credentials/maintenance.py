"""The provider's background task: one maintenance pass, then sleep until something is due."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("ingress_egress.credentials.firestore")


class MaintenanceScheduler:
    """Runs ``maintain()`` whenever ``due_in()`` seconds have passed or ``wake()`` is called."""

    def __init__(
        self, maintain: Callable[[], Awaitable[None]], due_in: Callable[[], float]
    ) -> None:
        self._maintain = maintain
        self._due_in = due_in
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._run(), name="twitch-credentials-maintenance")

    def wake(self) -> None:
        """Something may be due sooner than planned: look again now."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while not self._stopped:
            self._wake.clear()
            try:
                await self._maintain()
            except Exception as exc:  # never let the task die
                log.error("credentials maintenance failed: %s", type(exc).__name__)
            delay = self._due_in()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
