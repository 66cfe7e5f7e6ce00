"""Waiting in tests: poll a condition until it holds or a deadline passes, never a fixed time.

``eventually`` (async) and ``wait_until`` (blocking, for set-up outside the event loop) are
the only places that sleep between polls; a test that must let real time pass (a fault that
lasts a given time) says so with a ``# fixed wait:`` comment (tests/test_test_hygiene.py).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

POLL_S = 0.02  # between two checks of a condition


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    timeout: float = 15.0,
    what: str = "",
    interval: float = POLL_S,
) -> None:
    """Poll ``check`` (plain or async) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, interval: float = POLL_S
) -> None:
    """Blocking ``eventually``; raises ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)
