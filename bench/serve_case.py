"""The real ``ingress-egress serve`` process, measured from outside (the deployed shape).

Starts ``serve`` pinned to ``--cpu`` with only what a deployment sets (bus, channels,
Twitch URL, port) and everything else at its defaults, unless ``--env NAME=VALUE`` says
otherwise; watches ``/_debug/twitch`` from this process (on another core) and times the
drain from the first chat message to the last envelope acknowledged, as the peers time
theirs. CPU seconds are the serve process's own (all its threads, from /proc). With the
stdout bus the envelopes go to a file and their (id, text) pairs to ``--out`` for the
integrity check.

The watching costs the measured process one small HTTP answer every ``POLL_S``: about
1-2 % of its CPU, and the end is known to within one poll.

Prints one JSON line, the shape of service_case.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_service import BIN, free_port
from peers.recorder import chat_pair

HERE = Path(__file__).parent
CHANNELS = tuple(f"bench{i}" for i in range(10))
POLL_S = 0.01
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of every thread of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def environment(args: argparse.Namespace, port: int) -> dict[str, str]:
    # Only the deployment's essentials; nothing inherited may change a default.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env.update(
        TWITCH_IRC_URL=args.url,
        TWITCH_CHANNELS=",".join(CHANNELS),
        PORT=str(port),
        HOST="127.0.0.1",
        NATS_URL=args.nats_url,
        NATS_STREAM=args.stream,
        BUS_PREFIX=args.prefix,
    )
    if args.driver != "default":
        env["MESSAGE_BUS_DRIVER"] = args.driver
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def watch(client: httpx.Client, proc: subprocess.Popen[bytes], expected: int) -> dict[str, Any]:
    def debug() -> dict[str, Any]:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        return client.get("/_debug/twitch", timeout=10).json()

    deadline = time.monotonic() + 60
    while True:
        try:
            snapshot = debug()
            if snapshot["counters"]["received"] > len(CHANNELS):
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("serve received nothing")
        time.sleep(0.002)
    wall0, cpu0 = time.perf_counter(), cpu_s(proc.pid)
    before = snapshot["counters"]["received"] - 1  # what came before the first chat read
    deadline = time.monotonic() + 300
    while True:
        counters = snapshot["counters"]
        if counters["published"] + counters["failed"] >= expected + len(CHANNELS):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"stalled: {counters}")
        time.sleep(POLL_S)
        snapshot = debug()
    wall, cpu = time.perf_counter() - wall0, cpu_s(proc.pid) - cpu0
    timed = expected + len(CHANNELS) - before
    return {
        "messages": timed,
        "wall_s": round(wall, 3),
        "msgs_per_s": round(timed / wall),
        "cpu_s_per_100k": round(cpu / timed * 100_000, 3),
        "msgs_per_cpu_s": round(timed / cpu) if cpu else None,
        "cpu_s": round(cpu, 3),
        "latency_ms": snapshot["publishLatencyMs"],
        "counters": snapshot["counters"],
        "spool": snapshot["queue"]["spool"] is not None,
    }


def pairs(envelopes: Path, out: Path) -> None:
    with envelopes.open(encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for line in src:
            pair = chat_pair(json.loads(line))
            if pair is not None:
                dst.write(json.dumps(list(pair), ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", default="default", help="MESSAGE_BUS_DRIVER, or default")
    parser.add_argument("--url", required=True)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="BENCH")
    parser.add_argument("--prefix", default="bench.")
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--out", default=None, help="(id, text) pairs (stdout bus only)")
    parser.add_argument("--cpu", default=None, help="pin serve to this CPU (taskset)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE, repeatable")
    parser.add_argument("--work", required=True)
    parser.add_argument("--profile", default="", help="py-spy raw profile of serve to here")
    args = parser.parse_args()
    port = free_port()
    work = Path(args.work)
    envelopes = work / f"serve-{port}.jsonl"
    argv = [str(BIN / "ingress-egress"), "serve"]
    if args.cpu is not None:
        argv = ["taskset", "-c", args.cpu, *argv]
    with envelopes.open("wb") as out, (work / f"serve-{port}.log").open("wb") as err:
        proc = subprocess.Popen(argv, env=environment(args, port), stdout=out, stderr=err)
    spy = None
    if args.profile:  # py-spy attached to serve (its own thread of the client core's time)
        spy_bin = str(HERE / ".peers" / "venv" / "bin" / "py-spy")
        spy_args = ["record", "-f", "raw", "-r", "250", "--nonblocking", "-p", str(proc.pid)]
        spy = subprocess.Popen(
            [spy_bin, *spy_args, "-o", args.profile],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            result = watch(client, proc, args.expected)
        result["rss_peak_mb"] = peak_rss_mb(proc.pid)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if args.out and args.driver in ("default", "stdout") and envelopes.stat().st_size:
        pairs(envelopes, Path(args.out))
    envelopes.unlink(missing_ok=True)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
