"""End-to-end benchmark: simulator (own process) -> service -> bus, over real sockets.

* throughput: the simulator sends N messages as fast as it can; we time from the first
  receipt to the last bus ack, and count the service process's CPU seconds;
* latency: at a fixed rate (default 5,000 msg/s), receipt -> bus ack p50/p99/p99.9 from the
  pipeline's histogram.

Drivers: ``memory`` (receive + envelope) and ``nats`` (+ JetStream acked publish, a real
nats-server in its own process). Results go to bench/results/service.json.

    .venv/bin/python bench/bench_service.py [--count 200000] [--rate 5000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingress_egress.bus.base import Publisher
from ingress_egress.config import Settings, parse_irc_url, pure_python
from ingress_egress.service import Service

RESULTS = Path(__file__).parent / "results"
CHANNELS = tuple(f"bench{i}" for i in range(10))
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing on port {port}")


def spawn(argv: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def simulator(count: int, rate: float | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [str(BIN / "ingress-egress"), "simulate", "--port", str(port), "--count", str(count)]
    if rate:
        argv += ["--rate", str(rate)]
    return spawn(argv, port), port


async def measure(
    settings: Settings,
    count: int,
    *,
    publisher: Publisher | None = None,
    before_stop: Callable[[Service], None] | None = None,
) -> dict[str, Any]:
    """Time ``count`` messages through a fresh service; ``before_stop`` may inspect it."""
    service = Service(settings, publisher=publisher)
    await service.start()
    expected = count + len(CHANNELS)  # one ROOMSTATE per channel
    deadline = time.monotonic() + 30
    # The clock starts at the first chat message, as the peers' does (the ROOMSTATEs of the
    # JOINs come earlier, and a prebuilt stream takes the simulator a while to build).
    while service.counters.received <= len(CHANNELS):
        if time.monotonic() > deadline:
            await service.stop()
            raise RuntimeError(f"nothing received: {service.view.debug_snapshot()}")
        await asyncio.sleep(0.001)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    before = service.counters.received - 1  # what came before the first chat read
    deadline = time.monotonic() + 120
    while service.counters.published + service.counters.failed < expected:
        if time.monotonic() > deadline:
            await service.stop()
            raise RuntimeError(f"stalled: {service.view.debug_snapshot()}")
        await asyncio.sleep(0.005)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    counters = service.counters.as_dict()
    latency = service.pipeline.latency.summary_ms()
    if before_stop is not None:
        before_stop(service)
    await service.stop()
    timed = expected - before
    return {
        "messages": timed,
        "wall_s": round(wall, 3),
        "msgs_per_s": round(timed / wall),
        "cpu_s_per_100k": round(cpu / timed * 100_000, 3),
        "msgs_per_cpu_s": round(timed / cpu) if cpu else None,
        "latency_ms": latency,
        "counters": counters,
    }


def run_case(driver: str, count: int, rate: float | None, nats_url: str) -> dict[str, Any]:
    sim, port = simulator(count, rate)
    try:
        settings = Settings.from_env({}).replace(
            ingress_egress_pure_python=pure_python(os.environ),
            message_bus_driver=driver,
            nats_url=nats_url,
            nats_stream=f"BENCH{int(time.time() * 1000)}",
            bus_prefix=f"bench{int(time.time() * 1000)}.",
            twitch_irc_url=parse_irc_url(f"irc://127.0.0.1:{port}"),
            twitch_channels=CHANNELS,
            host="127.0.0.1",
            port=0,
            queue_max_messages=max(100_000, count),
            publish_max_in_flight=4096,
        )
        return asyncio.run(measure(settings, count))
    finally:
        stop(sim)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-nats-")
    nats_port = free_port()
    nats_proc = spawn(
        [str(BIN / "nats-server"), "-js", "-a", "127.0.0.1", "-p", str(nats_port), "-sd", workdir],
        nats_port,
    )
    url = f"nats://127.0.0.1:{nats_port}"
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    try:
        for driver in ("memory", "nats"):
            print(f"  running {driver}...", file=sys.stderr, flush=True)
            results[f"throughput_{driver}"] = run_case(driver, args.count, None, url)
            paced = int(args.rate * args.seconds)
            results[f"latency_{driver}_{int(args.rate)}"] = run_case(driver, paced, args.rate, url)
    finally:
        stop(nats_proc)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "service.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"service benchmark ({results['machine']}, {results['date']})")
    for name, case in results.items():
        if isinstance(case, dict):
            lat = case["latency_ms"]
            print(
                f"  {name:22s} {case['msgs_per_s']:>9,} msg/s wall  "
                f"{case['msgs_per_cpu_s'] or 0:>9,} msg/CPU-s  "
                f"{case['cpu_s_per_100k']:>6.2f} CPU-s/100k  "
                f"ack p50 {lat['p50']} ms  p99 {lat['p99']} ms  p99.9 {lat['p999']} ms"
            )


if __name__ == "__main__":
    main()
