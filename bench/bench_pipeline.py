"""Pipeline micro-benchmark: the per-message cost of ``submit`` and of the send loop.

    .venv/bin/python bench/bench_pipeline.py [--messages 20000] [--rounds 7]

* submit: the real ``Pipeline.submit`` (``builder.build`` + ``to_outbound``) against
  ``fused_submit`` (one ``message_to_outbound`` call, the change proposed for pipeline.py),
  same typed PRIVMSGs, rounds alternating, best round (process CPU time);
* drain: a queue of N messages through the real send loop into the memory bus, acks and
  latency recording included, and again with the latency histogram switched off (its
  share of the cost).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_normalize import corpus
from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.pipeline.pipeline import Pipeline
from ingress_egress.protocol import parse_line
from ingress_egress.status import Counters, ErrorLog
from ingress_egress.twitch.messages import from_irc
from profile_stages import fused_submit


def new_pipeline(count: int) -> Pipeline:
    return Pipeline(
        EnvelopeBuilder(),
        MemoryPublisher(keep=0),
        Counters(),
        ErrorLog(),
        queue_max=count + 1,
        max_in_flight=4096,
    )


def submit_us(submit: Callable[..., None], typed: list[Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        pipeline = new_pipeline(len(typed))
        now = time.time()
        start = time.process_time()
        for message in typed:
            submit(pipeline, message, now)
        best = min(best, time.process_time() - start)
    return best / len(typed) * 1e6


async def drain_us(typed: list[Any], latency: bool) -> float:
    pipeline = new_pipeline(len(typed))
    if not latency:
        pipeline.latency.record = lambda seconds: None  # type: ignore[method-assign]
    await pipeline.publisher.start()
    now = time.time()
    for message in typed:
        fused_submit(pipeline, message, now)
    start = time.process_time()
    pipeline.start()
    while pipeline.counters.published < len(typed):
        await asyncio.sleep(0)
    spent = time.process_time() - start
    await pipeline.stop()
    return spent / len(typed) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    typed = [from_irc(parse_line(line)) for line in corpus(args.messages)]
    reference, fused = [], []
    for _ in range(args.rounds):
        reference.append(submit_us(Pipeline.submit, typed, 1))
        fused.append(submit_us(fused_submit, typed, 1))
    print(
        f"pipeline, {len(typed):,} PRIVMSGs, best of {args.rounds} "
        f"({platform.machine()}, {platform.python_version()}, process CPU time)"
    )
    ref, fus = min(reference), min(fused)
    print(f"  submit, reference (build + to_outbound)  {ref:6.2f} us/msg")
    print(f"  submit, fused (message_to_outbound)      {fus:6.2f} us/msg   {ref / fus:.2f}x")
    with_latency = min(asyncio.run(drain_us(typed, True)) for _ in range(args.rounds))
    without = min(asyncio.run(drain_us(typed, False)) for _ in range(args.rounds))
    print(f"  send loop + acks, memory bus             {with_latency:6.2f} us/msg")
    print(f"    of which latency histogram             {with_latency - without:6.2f} us/msg")


if __name__ == "__main__":
    main()
