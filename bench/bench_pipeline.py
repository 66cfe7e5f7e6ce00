"""Pipeline micro-benchmark: the Python cost per message around the codec's conversion.

    .venv/bin/python bench/bench_pipeline.py [--messages 20000] [--rounds 7]

The same generated PRIVMSG lines, in reads of ``--read`` lines as the read loop hands them:

* convert: the codec's ``decode`` alone (``make_codec``'s choice, as the service makes it:
  the native codec when the extension is built, else the Python one; the output names it);
* submit: ``decode`` + ``Pipeline.accept_many`` (conversion + the window), so
  submit - convert is the window's bookkeeping;
* drain: the queued messages through the real send loop into the memory bus, acks and
  latency recording included; with ``--nats-url`` also into JetStream (a stream the
  benchmark creates), this process's CPU only.

Process CPU time, best round, us per message (the machine is named in the output).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from pathlib import Path

from ingress_egress.config import pure_python

sys.path.insert(0, str(Path(__file__).parent))

from bench_normalize import corpus
from ingress_egress.bus.base import Publisher
from ingress_egress.bus.memory import MemoryPublisher
from ingress_egress.bus.nats import NatsPublisher
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.pipeline.pipeline import Pipeline
from ingress_egress.sources.irc.codec import IrcCodec, make_codec
from ingress_egress.status import Counters, ErrorLog


def new_pipeline(count: int, publisher: Publisher | None = None) -> Pipeline:
    return Pipeline(
        publisher or MemoryPublisher(keep=0),
        Counters(),
        ErrorLog(),
        queue_max=count + 1,
        max_in_flight=4096,
    )


def reads(lines: list[str], size: int) -> list[list[str]]:
    return [lines[i : i + size] for i in range(0, len(lines), size)]


def convert_us(batches: list[list[str]], total: int) -> float:
    codec = make_codec(EnvelopeBuilder(), pure=pure_python(os.environ))
    start = time.process_time()
    for batch in batches:
        codec.decode(batch, time.time())
    return (time.process_time() - start) / total * 1e6


def accept_read(pipeline: Pipeline, codec: IrcCodec, batch: list[str]) -> None:
    decoded = codec.decode(batch, time.time())
    pipeline.accept_many(decoded.envelopes, chat_only=decoded.chat_only)


def submit_us(batches: list[list[str]], total: int) -> float:
    pipeline, codec = (
        new_pipeline(total),
        make_codec(EnvelopeBuilder(), pure=pure_python(os.environ)),
    )
    start = time.process_time()
    for batch in batches:
        accept_read(pipeline, codec, batch)
    return (time.process_time() - start) / total * 1e6


async def drain_us(batches: list[list[str]], total: int, nats_url: str = "") -> float:
    publisher = None
    if nats_url:
        tag = f"bp{time.monotonic_ns()}"
        publisher = NatsPublisher(nats_url, f"{tag}.internal.ingress.v1", tag.upper())
    pipeline = new_pipeline(total, publisher)
    await pipeline.publisher.start()
    codec = make_codec(EnvelopeBuilder(), pure=pure_python(os.environ))
    for batch in batches:
        accept_read(pipeline, codec, batch)
    start = time.process_time()
    pipeline.start()
    while pipeline.counters.published < total:
        await asyncio.sleep(0.001)  # not 0: a busy wait would bill the acks' wait as CPU
    spent = time.process_time() - start
    await pipeline.stop()
    await pipeline.publisher.close()
    return spent / total * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--read", type=int, default=64, help="lines per read")
    parser.add_argument("--nats-url", default="", help="also drain into JetStream there")
    args = parser.parse_args()
    lines = corpus(args.messages)
    batches = reads(lines, args.read)
    convert, submit, drain, nats = [], [], [], []
    for _ in range(args.rounds):  # interleaved, so noise hits all three alike
        convert.append(convert_us(batches, len(lines)))
        submit.append(submit_us(batches, len(lines)))
        drain.append(asyncio.run(drain_us(batches, len(lines))))
        if args.nats_url:
            nats.append(asyncio.run(drain_us(batches, len(lines), args.nats_url)))
    print(
        f"pipeline, {len(lines):,} PRIVMSG lines in reads of {args.read}, best of "
        f"{args.rounds} ({platform.machine()}, {platform.python_version()}, process CPU time)"
    )
    name = make_codec(EnvelopeBuilder(), pure=pure_python(os.environ)).name
    c, s, d = min(convert), min(submit), min(drain)
    print(f"  convert ({name + ' codec.decode)':26s} {c:6.2f} us/msg")
    print(f"  decode + accept_many (+ window)     {s:6.2f} us/msg   window {s - c:5.2f}")
    print(f"  send loop + acks, memory bus        {d:6.2f} us/msg")
    print(f"  total                               {s + d:6.2f} us/msg")
    if nats:
        n = min(nats)
        print(f"  send loop + acks, NATS JetStream    {n:6.2f} us/msg   total {s + n:6.2f}")


if __name__ == "__main__":
    main()
