"""Where the time goes: us/message per stage of the hot path, and a profile of the service.

    .venv/bin/python bench/profile_stages.py stages [--lines 20000] [--rounds 5]
    .venv/bin/python bench/profile_stages.py service [--count 100000] [--top 25]

``stages`` times each step of what the Python codec does per PRIVMSG (process CPU time,
best of the rounds, each stage over the same inputs), then each codec's whole ``decode``
per line, a read of ``READ_LINES`` lines at a time (the native codec when the extension is
built).
``service`` runs the memory-bus service against the simulator (its own process) once
without and once under cProfile, and prints the functions with the most own time per
message (cProfile inflates Python calls; read it for shares, the first run for the rate).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingress_egress.config import pure_python

sys.path.insert(0, str(Path(__file__).parent))

from bench_normalize import corpus
from bench_service import CHANNELS, measure, simulator, stop
from ingress_egress.config import Settings, parse_irc_url
from ingress_egress.envelope import EnvelopeBuilder, encode_envelope, outbound
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.protocol import parse_line
from ingress_egress.sources.irc.codec import IrcCodec, PythonCodec, make_codec
from ingress_egress.twitch.messages import from_irc

READ_LINES = 64  # lines per codec.decode call (one read)


def best_us(
    step: Callable[[Any], Any], items: list[Any], rounds: int, messages: int | None = None
) -> float:
    """us per message: ``messages`` in all (default: one per item)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for item in items:
            step(item)
        best = min(best, time.process_time() - start)
    return best / (messages or len(items)) * 1e6


def stages(args: argparse.Namespace) -> None:
    lines = corpus(args.lines)
    builder = EnvelopeBuilder()
    span_ids = RandomIds()
    parsed = [parse_line(line) for line in lines]
    typed = [from_irc(msg) for msg in parsed]
    envelopes = [builder.build(msg, 1_700_000_000.5) for msg in typed]
    now = time.monotonic

    def to_outbound(envelope: dict[str, Any]) -> Any:
        return outbound.to_outbound(envelope, span_ids.span_id(), now())

    def reference(msg: Any) -> Any:
        envelope = builder.build(msg, 1_700_000_000.5)
        return outbound.to_outbound(envelope, span_ids.span_id(), now())

    def message_to_outbound(msg: Any) -> Any:
        return outbound.message_to_outbound(builder, msg, 1_700_000_000.5, span_ids, now())

    rows: list[tuple[str, Callable[[Any], Any], list[Any]]] = [
        ("parse_line", parse_line, lines),
        ("from_irc (typed)", from_irc, parsed),
        ("builder.build (envelope dict)", lambda m: builder.build(m, 1_700_000_000.5), typed),
        ("encode_envelope (orjson)", encode_envelope, envelopes),
        ("to_outbound (incl. orjson, span id)", to_outbound, envelopes),
        ("build + to_outbound", reference, typed),
        ("message_to_outbound", message_to_outbound, typed),
        ("time.monotonic()", lambda _: now(), typed),
    ]
    machine = f"{platform.node()} {platform.machine()}, {platform.python_version()}"
    print(f"stages, {len(lines):,} PRIVMSG lines, best of {args.rounds} ({machine})")
    print("  [Python stages]")
    for name, step, items in rows:
        print(f"    {name:40s} {best_us(step, items, args.rounds):7.2f} us/msg")
    codecs: list[IrcCodec] = [PythonCodec(EnvelopeBuilder())]
    chosen = make_codec(
        EnvelopeBuilder(), pure=pure_python(os.environ)
    )  # the native codec when the extension is built
    if chosen.name != codecs[0].name:
        codecs.append(chosen)
    reads = [lines[i : i + READ_LINES] for i in range(0, len(lines), READ_LINES)]
    print(f"  [codec.decode, reads of {READ_LINES} lines]")
    for codec in codecs:
        per_line = best_us(
            lambda read, c=codec: c.decode(read, 1_700_000_000.5), reads, args.rounds, len(lines)
        )
        print(f"    {codec.name + ' codec':40s} {per_line:7.2f} us/msg")


def service(args: argparse.Namespace) -> None:
    def settings(port: int) -> Settings:
        return Settings.from_env({}).replace(
            ingress_egress_pure_python=pure_python(os.environ),
            message_bus_driver="memory",
            twitch_irc_url=parse_irc_url(f"irc://127.0.0.1:{port}"),
            twitch_channels=CHANNELS,
            host="127.0.0.1",
            port=0,
            queue_max_messages=max(100_000, args.count),
            publish_max_in_flight=4096,
        )

    for profiled in (False, True):
        sim, port = simulator(args.count, None)
        profile = cProfile.Profile() if profiled else None
        try:
            if profile is not None:
                profile.enable()
            result = asyncio.run(measure(settings(port), args.count))
            if profile is not None:
                profile.disable()
        finally:
            stop(sim)
        label = "under cProfile" if profiled else "plain"
        print(
            f"service, memory bus, {label}: {result['msgs_per_s']:,} msg/s wall, "
            f"{result['cpu_s_per_100k'] * 10:.2f} us CPU/msg"
        )
        if profile is not None:
            stats = pstats.Stats(profile)
            entries = sorted(
                stats.stats.items(),  # type: ignore[attr-defined]
                key=lambda item: item[1][2],
                reverse=True,
            )
            total = sum(item[1][2] for item in entries)
            print(f"  own time per message (cProfile total {total / args.count * 1e6:.1f} us)")
            for (file, line, func), (_, calls, own, _cum, _) in entries[: args.top]:
                where = f"{Path(file).name}:{line}({func})"
                print(f"    {own / args.count * 1e6:7.2f} us  {calls:>9,} calls  {where}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("stages", "service"))
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    stages(args) if args.what == "stages" else service(args)


if __name__ == "__main__":
    main()
