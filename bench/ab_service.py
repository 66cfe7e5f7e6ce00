"""A/B of the proposed fast-path wiring in the running service (simulator in its own process).

    .venv/bin/python bench/ab_service.py [--driver memory|nats] [--count 100000] [--rounds 3]

Variants, alternated within each round so that load from elsewhere hits them alike:

* ``reference``: the service as it is (``Pipeline.submit`` = ``build`` + ``to_outbound``);
* ``fused``: ``Pipeline.submit`` swapped for ``profile_stages.fused_submit`` (one C call);
* ``fused+hpub`` (nats): also ``bus.nats.hpub_frame`` through ``_speedups.hpub_frame``;
* ``batched``: also the client's ``_handle`` swapped for ``profile_stages.batched_handle``
  (one ``lines_to_outbound`` call per read).

Prints msg/s (wall, bounded by the simulator sharing the machine) and the service's CPU
microseconds per message (the figure to compare).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import profile_stages
from bench_service import BIN, CHANNELS, free_port, measure, simulator, spawn, stop
from ingress_egress import _native
from ingress_egress.bus import nats as nats_bus
from ingress_egress.config import Settings, parse_irc_url
from ingress_egress.pipeline.pipeline import Pipeline
from ingress_egress.sources.irc.client import TwitchIrcClient

REFERENCE_SUBMIT = Pipeline.submit
REFERENCE_HANDLE = TwitchIrcClient._handle
REFERENCE_FRAME = nats_bus.hpub_frame


def c_frame(subject: bytes, message: Any) -> bytes:
    frame = _native.speedups.hpub_frame(subject, message) if _native.speedups else None
    return frame if frame is not None else REFERENCE_FRAME(subject, message)


def use(variant: str) -> None:
    fused = variant != "reference"
    Pipeline.submit = profile_stages.fused_submit if fused else REFERENCE_SUBMIT  # type: ignore[method-assign]
    batched = variant == "batched"
    handle = profile_stages.batched_handle if batched else REFERENCE_HANDLE
    TwitchIrcClient._handle = handle  # type: ignore[method-assign]
    nats_bus.hpub_frame = c_frame if variant in ("fused+hpub", "batched") else REFERENCE_FRAME


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--driver", choices=("memory", "nats"), default="memory")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    variants = ["reference", "fused", "batched"]
    nats_proc, nats_url = None, "nats://127.0.0.1:4222"
    if args.driver == "nats":
        variants.insert(2, "fused+hpub")
        port = free_port()
        workdir = tempfile.mkdtemp(prefix="bench-nats-")
        argv = [str(BIN / "nats-server"), "-js", "-a", "127.0.0.1", "-p", str(port)]
        nats_proc = spawn([*argv, "-sd", workdir], port)
        nats_url = f"nats://127.0.0.1:{port}"
    best: dict[str, float] = {}
    try:
        for round_ in range(args.rounds):
            for variant in variants:
                use(variant)
                sim, port = simulator(args.count, None)
                tag = f"ab{round_}{variants.index(variant)}{int(time.time())}"
                settings = replace(
                    Settings.from_env({}),
                    message_bus_driver=args.driver,
                    nats_url=nats_url,
                    nats_stream=tag.upper(),
                    bus_prefix=f"{tag}.",
                    twitch_irc_url=parse_irc_url(f"irc://127.0.0.1:{port}"),
                    twitch_channels=CHANNELS,
                    host="127.0.0.1",
                    port=0,
                    queue_max_messages=max(100_000, args.count),
                    publish_max_in_flight=4096,
                )
                try:
                    result = asyncio.run(measure(settings, args.count))
                finally:
                    stop(sim)
                cpu_us = result["cpu_s_per_100k"] * 10
                best[variant] = min(best.get(variant, float("inf")), cpu_us)
                print(
                    f"  {args.driver} {variant:11s} {result['msgs_per_s']:>8,} msg/s wall  "
                    f"{cpu_us:6.2f} us CPU/msg  failed {result['counters']['failed']}",
                    flush=True,
                )
    finally:
        use("reference")
        if nats_proc is not None:
            stop(nats_proc)
    base = best["reference"]
    for variant, cpu_us in best.items():
        print(f"best {variant:11s} {cpu_us:6.2f} us CPU/msg  {base / cpu_us:.2f}x")


if __name__ == "__main__":
    main()
