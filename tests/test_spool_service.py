"""The spool in the real `ingress-egress serve` process, with a real nats-server and the chat
simulator: a bus down at start-up, a spool written for another destination, and a full disk
(a real 2 MiB tmpfs, filled by a ballast file) under a healthy bus."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ingress_egress.config import Settings
from ingress_egress.simulator import ChatSimulator
from tests.support.delivery import CHANNELS, assert_same, sent_ids, stored_chat
from tests.support.nats import NatsServer
from tests.support.serve import Serve, idle

pytestmark = pytest.mark.timeout(300)
SETTINGS = Settings.defaults(message_bus_driver="nats")


async def readyz(serve: Serve) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{serve.port}/readyz", timeout=5)
        return response.status_code, response.json()


async def metric(serve: Serve, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{serve.port}/metrics", timeout=5)).text
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_a_bus_down_at_start_up_does_not_stop_reading(tmp_path: Path) -> None:
    count = 3000
    server = NatsServer(tmp_path)  # its port is chosen; the server is not running yet
    serve: Serve | None = None
    try:
        async with ChatSimulator(count=count, rate=2000) as sim:
            serve = Serve(tmp_path, sim.port, server.url, QUEUE_MAX_MESSAGES="500")
            assert await sim.wait_sent(count, timeout=60)
            debug = await serve.until(
                lambda d: d["counters"]["received"] >= count + len(CHANNELS), 60, "reads"
            )
            assert debug["counters"]["published"] == 0
            assert debug["counters"]["spilled"] > 0  # past the window: in the spool only
            status, body = await readyz(serve)
            assert status == 503 and "bus not connected" in json.dumps(body)
            await serve.until(lambda d: d["queue"]["spool"]["segments"] > 0, 10, "on disk")
            server.start()
            await serve.until(
                lambda d: idle(d) and d["counters"]["published"] >= count + len(CHANNELS),
                90,
                "published once the bus came",
            )
            assert await serve.terminate() < 10
        assert_same(await stored_chat(server.url, SETTINGS, count), sent_ids(sim))
    finally:
        if serve is not None:
            serve.cleanup()
        server.stop()


async def test_a_spool_from_another_destination_is_kept_aside_not_published(
    tmp_path: Path,
) -> None:
    count = 1000
    other = {"BUS_PREFIX": "other.", "NATS_STREAM": "OTHER"}
    server = NatsServer(tmp_path)
    processes: list[Serve] = []
    try:
        async with ChatSimulator(count=count, rate=2000) as sim:
            # 1. Written for `other.` / OTHER while its bus is down, then stopped: kept.
            first = Serve(tmp_path, sim.port, server.url, **other)
            processes.append(first)
            await first.until(
                lambda d: d["counters"]["received"] >= count + len(CHANNELS), 60, "reads"
            )
            assert await first.terminate() < 10
            first_ids = sent_ids(sim)
        server.start()
        async with ChatSimulator(count=count, rate=2000, seed=2) as sim:
            # 2. The next process, for the default destination, on the same directory.
            second = Serve(tmp_path, sim.port, server.url)
            processes.append(second)
            debug = await second.until(
                lambda d: idle(d) and d["counters"]["published"] >= count + len(CHANNELS),
                60,
                "its own traffic published",
            )
            (aside,) = debug["queue"]["spool"]["keptAside"]
            assert aside["destination"]["subject"] == "other.internal.ingress.v1"
            assert any(e["code"] == "spool_foreign" for e in debug["recentErrors"])
            assert "moved to" in second.log()
            assert await second.terminate() < 10
            # Only the second process's own messages are in its stream.
            assert_same(await stored_chat(server.url, SETTINGS, count), sent_ids(sim))
        # 3. The set-aside spool, given to a process configured for its destination, is
        # published there.
        third = Serve(tmp_path, 1, server.url, SPOOL_DIR=aside["path"], **other)
        processes.append(third)
        await third.until(lambda d: idle(d) and d["counters"]["replayed"] >= count, 60, "replayed")
        assert await third.terminate() < 10
        stored = await stored_chat(
            server.url,
            Settings.defaults(message_bus_driver="nats", bus_prefix="other.", nats_stream="OTHER"),
            count,
        )
        assert_same(stored, first_ids)
    finally:
        for process in processes:
            process.cleanup()
        server.stop()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A real tmpfs of ``size`` (the test runs as root, as .ci/run does here)."""
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """A ballast file taking every free byte of the filesystem (until ENOSPC)."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return ballast


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_full_disk_with_a_healthy_bus_keeps_publishing_within_the_cap(
    tmp_path: Path,
) -> None:
    count = 20_000
    cap = 4 << 20
    server = NatsServer(tmp_path).start()
    serve: Serve | None = None
    with small_tmpfs(tmp_path / "tmpfs") as disk:
        try:
            async with ChatSimulator(count=count, rate=4000) as sim:
                sim.pause()
                serve = Serve(
                    tmp_path,
                    sim.port,
                    server.url,
                    SPOOL_DIR=str(disk / "spool"),
                    SPOOL_MAX_BYTES=str(cap),
                )
                await serve.until(lambda d: len(d["joinedChannels"]) == len(CHANNELS), 30, "up")
                ballast = fill(disk)  # the disk is full from here on
                sim.resume()
                degraded = await serve.until(
                    lambda d: not d["queue"]["spool"]["healthy"], 60, "degraded reported"
                )
                assert "No space left" in degraded["queue"]["spool"]["degraded"]
                status, body = await readyz(serve)
                assert status == 503 and "spool degraded" in json.dumps(body)
                assert await metric(serve, "ingress_spool_degraded") == 1
                await sim.wait_sent(count // 2, timeout=60)
                ballast.unlink()  # space comes back: writes work again
                assert await sim.wait_sent(count, timeout=90)
                final = await serve.until(
                    lambda d: idle(d) and d["counters"]["published"] >= count + len(CHANNELS),
                    90,
                    "everything published",
                )
                await serve.until(lambda d: d["queue"]["spool"]["healthy"], 10, "recovered")
                assert await metric(serve, "ingress_spool_degraded") == 0
                assert final["counters"]["refused"] == 0 and final["counters"]["failed"] == 0
                assert final["queue"]["spool"]["writeErrors"] > 0
                rss = peak_rss_mb(serve.proc.pid)
                print(f"full disk, healthy bus: peak RSS {rss:.0f} MB, cap {cap >> 20} MiB")
                assert rss < 250  # 1.4 GB before: acknowledged records piled up in memory
                assert await serve.terminate() < 10
            assert_same(await stored_chat(server.url, SETTINGS, count), sent_ids(sim))
            # Acknowledged segments were deleted: the disk holds (almost) nothing now.
            used = sum(p.stat().st_size for p in (disk / "spool").glob("*.seg"))
            assert used < 64 << 10
        finally:
            if serve is not None:
                serve.cleanup()
            server.stop()
