"""Run the real service in-process against the simulator, and poll its HTTP routes."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ingress_egress.config import Settings, parse_irc_url
from ingress_egress.service import Service


def settings_for(
    base: Settings, sim_port: int, channels: tuple[str, ...], **extra: Any
) -> Settings:
    return base.replace(
        twitch_irc_url=parse_irc_url(f"irc://127.0.0.1:{sim_port}"),
        twitch_channels=channels,
        host="127.0.0.1",
        port=0,
        irc_reconnect_initial_ms=extra.pop("irc_reconnect_initial_ms", 50),
        irc_reconnect_max_ms=extra.pop("irc_reconnect_max_ms", 500),
        **extra,
    )


@asynccontextmanager
async def running(settings: Settings, **kwargs: Any) -> AsyncIterator[Service]:
    service = Service(settings, **kwargs)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]],
    timeout: float = 15.0,
    what: str = "",
    interval: float = 0.02,
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


async def get(service: Service, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as client:
        return await client.get(path, timeout=5)


async def wait_status(service: Service, path: str, status: int, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = await get(service, path)
        if response.status_code == status:
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"{path}: {response.status_code} {response.text}")
        await asyncio.sleep(0.05)
