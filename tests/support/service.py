"""Run the real service in-process against the simulator, and poll its HTTP routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from ingress_egress.config import Settings, parse_irc_url
from ingress_egress.service import Service
from tests.support.waiting import eventually

__all__ = ["eventually", "get", "running", "settings_for", "wait_status"]


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


async def get(service: Service, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as client:
        return await client.get(path, timeout=5)


async def wait_status(service: Service, path: str, status: int, timeout: float = 15.0) -> dict:
    """The JSON body of ``path`` once it answers ``status``."""
    last: list[httpx.Response] = []

    async def answers() -> bool:
        last[:] = [await get(service, path)]
        return last[0].status_code == status

    try:
        await eventually(answers, timeout, f"{path} answering {status}", interval=0.05)
    except AssertionError:
        raise AssertionError(f"{path}: {last[0].status_code} {last[0].text}") from None
    return last[0].json()
