"""Hot-path benchmark: raw PRIVMSG line -> parse -> typed message -> envelope -> JSON bytes.

Runs on one core over a corpus from the project's traffic generator (full Twitch tags,
unique ids, emotes, replies, non-ASCII text). Prints lines/s for the whole path and for each
stage, so the profile is visible without a profiler. Speed lives here, never in tests.

    .venv/bin/python bench/bench_normalize.py [--lines 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingress_egress.envelope import EnvelopeBuilder, encode_envelope
from ingress_egress.protocol import parse_line
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.twitch.messages import from_irc

RESULTS = Path(__file__).parent / "results"


def corpus(count: int, channels: int = 20) -> list[str]:
    generator = TrafficGenerator(seed=7)
    names = [f"channel{i}" for i in range(channels)]
    return [generator.privmsg(names[i % channels])[0] for i in range(count)]


def rate(work: Callable[[], Any], items: int, rounds: int) -> dict[str, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        work()
        samples.append(items / (time.perf_counter() - start))
    return {"best": max(samples), "median": statistics.median(samples)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    lines = corpus(args.lines)
    builder = EnvelopeBuilder()
    parsed = [parse_line(line) for line in lines]
    typed = [from_irc(msg) for msg in parsed]
    envelopes = [builder.build(msg) for msg in typed]

    def full() -> None:
        for line in lines:
            encode_envelope(builder.build(from_irc(parse_line(line))))

    def each(step: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
        # Results are dropped at once, as in the service: keeping 50k objects alive would
        # make the cyclic GC, not the code, dominate the figure.
        def work() -> None:
            for item in items:
                step(item)

        return work

    stages = {
        "full (parse+typed+envelope+json)": full,
        "parse_line": each(parse_line, lines),
        "typed (from_irc)": each(from_irc, parsed),
        "envelope build": each(builder.build, typed),
        "json encode": each(encode_envelope, envelopes),
        "ceiling: str.split per line": each(str.split, lines),
    }
    results = {name: rate(work, len(lines), args.rounds) for name, work in stages.items()}
    machine = (
        f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )
    print(f"normalize hot path, {len(lines):,} PRIVMSG lines, best of {args.rounds} ({machine})")
    for name, figures in results.items():
        micros = 1e6 / figures["best"]
        print(f"  {name:34s} {figures['best']:>12,.0f} lines/s  {micros:6.2f} us/line")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "normalize.json").write_text(
        json.dumps({"machine": machine, "lines": len(lines), "stages": results}, indent=2)
    )


if __name__ == "__main__":
    main()
