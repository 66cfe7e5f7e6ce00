"""Bounded awaits for clients whose cancellation can itself take long (Firestore's)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], timeout: float) -> T:
    """Like ``asyncio.wait_for`` but without waiting for the cancelled work to wind down.

    The Firestore client rolls a failed transaction back in an ``except BaseException`` block;
    against an unreachable server that rollback retries for up to a minute, and ``wait_for``
    would wait for it. Here the call is cancelled and left to finish on its own.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_swallow)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_swallow)
        raise TimeoutError
    return task.result()


def _swallow(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # mark retrieved: nobody is waiting for this outcome any more
