"""Hot-path benchmark: raw PRIVMSG line -> parse -> typed message -> envelope -> JSON bytes.

Two whole paths: "full" (parse, typed, ``EnvelopeBuilder.build``, ``encode_envelope``, the
original measure, in Python) and "service path" (the IRC codec's ``decode``, reads of
``READ`` lines: the ``OutboundMessage`` the pipeline queues), the latter for each codec.

Runs on one core over a corpus from the project's traffic generator (full Twitch tags,
unique ids, emotes, replies, non-ASCII text) and reports the native codec (the C extension,
``ingress_egress._native``) and the Python codec side by side, with the ratio, then each
Python stage. Speed lives here, never in tests.

    .venv/bin/python bench/bench_normalize.py [--lines 50000] [--rounds 5] [--gc-freeze]

How it measures: rounds of C and Python alternate (C, Python, C, ...) so that load from
elsewhere on a shared machine hits both alike; figures are timed with the process CPU clock
(time.process_time: the CPU this process used, which is what "lines/s on one core" means
and is not inflated by time slices given to other processes). Two views are printed: the
best whole round, and the sum over 1,000-line chunks of each chunk's fastest time across
rounds, which filters out bursts of interference from other processes (on a shared 2-core
VM those swing whole rounds by up to 2x); the wall-clock best and the median round are
recorded too in bench/results/normalize.json. Both codecs run in the same process (each
its own ``EnvelopeBuilder``); ``INGRESS_EGRESS_PURE_PYTHON=1`` runs only the Python column,
without the extension loaded. Rows that exist in Python only leave the C column empty.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingress_egress.config import pure_python
from ingress_egress.envelope import EnvelopeBuilder, encode_envelope
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.envelope.outbound import message_to_outbound
from ingress_egress.protocol import parse_line
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import IrcCodec, PythonCodec, make_codec
from ingress_egress.twitch.messages import from_irc

RESULTS = Path(__file__).parent / "results"
FUSED = "service path (codec.decode)"
READ = 64  # lines per decode call (one read)
TARGET = 100_000  # lines/s on one core, full path (the requirement)


def corpus(count: int, channels: int = 20) -> list[str]:
    generator = TrafficGenerator(seed=7)
    names = [f"channel{i}" for i in range(channels)]
    return [generator.privmsg(names[i % channels])[0] for i in range(count)]


CHUNK = 1_000


def each(step: Callable[[Any], Any]) -> Callable[[list[Any]], None]:
    """A chunk runner calling ``step`` per item. Results are dropped at once, as in the
    service: keeping 50k objects alive would make the cyclic GC, not the code, dominate."""

    def run(chunk: list[Any]) -> None:
        for item in chunk:
            step(item)

    return run


def decode_reads(codec: IrcCodec) -> Callable[[list[str]], None]:
    """A chunk runner decoding the chunk in reads of ``READ`` lines, as the read loop does."""

    def run(chunk: list[str]) -> None:
        for start in range(0, len(chunk), READ):
            codec.decode(chunk[start : start + READ], time.time())

    return run


def measure(
    runs: dict[str, Callable[[list[Any]], None]], items: list[Any], rounds: int
) -> dict[str, dict[str, float]]:
    """Items/s of each implementation's chunk runner (``runs``) over ``items``, rounds
    alternating between implementations.

    best: the best whole round (process CPU time); median: the median round; wall_best: the
    best round by wall clock; chunk_min: items / the sum, over 1,000-item chunks, of each
    chunk's fastest time across rounds (filters out interference from other processes on a
    shared machine: each chunk still does all of its work).
    """
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    impls = list(runs)
    rounds_cpu: dict[str, list[float]] = {impl: [] for impl in impls}
    rounds_wall: dict[str, list[float]] = {impl: [] for impl in impls}
    chunk_best: dict[str, list[float]] = {impl: [float("inf")] * len(chunks) for impl in impls}
    for _ in range(rounds):
        for impl in impls:
            run = runs[impl]
            total_cpu, wall = 0.0, time.perf_counter()
            for index, chunk in enumerate(chunks):
                start = time.process_time()
                run(chunk)
                spent = time.process_time() - start
                total_cpu += spent
                chunk_best[impl][index] = min(chunk_best[impl][index], spent)
            rounds_cpu[impl].append(total_cpu)
            rounds_wall[impl].append(time.perf_counter() - wall)
    n = len(items)
    return {
        impl: {
            "best": n / min(rounds_cpu[impl]),
            "median": n / statistics.median(rounds_cpu[impl]),
            "wall_best": n / min(rounds_wall[impl]),
            "chunk_min": n / sum(chunk_best[impl]),
        }
        for impl in impls
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print only; leave bench/results/normalize.json alone (e.g. on a busy machine)",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() after building the corpus (what the service can do after start-up)",
    )
    args = parser.parse_args()
    codecs: dict[str, IrcCodec] = {}
    chosen = make_codec(
        EnvelopeBuilder(), pure=pure_python(os.environ)
    )  # the native codec when the extension is built
    if chosen.name == "native":
        codecs["c"] = chosen
    codecs["python"] = PythonCodec(EnvelopeBuilder())
    impls = list(codecs)
    lines = corpus(args.lines)
    builder = EnvelopeBuilder()

    def full(chunk: list[str]) -> None:
        for line in chunk:
            encode_envelope(builder.build(from_irc(parse_line(line))))

    span_ids = RandomIds()
    now = time.monotonic

    # What the service does per read: the codec's decode (native: the JSON written directly
    # from the raw line; Python: parse, type, build, orjson, to_outbound).
    services = {impl: decode_reads(codec) for impl, codec in codecs.items()}

    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    full(lines)  # warm-up: imports, caches, the allocator's arenas
    for service in services.values():
        service(lines)
    results = {
        "full (parse+typed+envelope+json)": measure({"python": full}, lines, args.rounds),
        FUSED: measure(services, lines, args.rounds),
    }

    # Stage inputs are built once; the stages are the Python codec's, Python only.
    parsed = [parse_line(line) for line in lines]
    typed = [from_irc(msg) for msg in parsed]
    envelopes = [builder.build(msg) for msg in typed]
    if args.gc_freeze:
        gc.freeze()
    stages: dict[str, tuple[Callable[[list[Any]], None], list[Any]]] = {
        "parse_line": (each(parse_line), lines),
        "typed (from_irc)": (each(from_irc), parsed),
        "envelope build": (each(builder.build), typed),
        "json encode (orjson, shared)": (each(encode_envelope), envelopes),
        "typed -> OutboundMessage": (
            each(lambda msg: message_to_outbound(builder, msg, None, span_ids, now())),
            typed,
        ),
        "ceiling: str.split per line": (each(str.split), lines),
    }
    for name, (run, items) in stages.items():
        results[name] = measure({"python": run}, items, args.rounds)

    python = f"{platform.python_implementation()} {platform.python_version()}"
    machine = f"{platform.machine()}, {python}"
    print(
        f"normalize hot path, {len(lines):,} PRIVMSG lines, best of {args.rounds} rounds "
        f"(process CPU time; {machine}{', gc frozen' if args.gc_freeze else ''})"
    )
    for key, title in (("best", "best whole round"), ("chunk_min", "min per 1k-line chunk")):
        print(f"  [{title}]")
        header = f"  {'stage':34s}"
        for impl in impls:
            header += f" {impl + ' lines/s':>15s} {'us/line':>8s}"
        print(header + ("     C/Py" if len(impls) == 2 else ""))
        for name, figures in results.items():
            row = f"  {name:34s}"
            for impl in impls:
                if impl not in figures:
                    row += f" {'-':>15s} {'-':>8s}"
                    continue
                rate = figures[impl][key]
                row += f" {rate:>15,.0f} {1e6 / rate:>8.2f}"
            if len(figures) == 2:
                row += f" {figures['c'][key] / figures['python'][key]:>7.2f}x"
            print(row)
    for row in ("full (parse+typed+envelope+json)", FUSED):
        impl = next(impl for impl in impls if impl in results[row])
        figures = results[row][impl]
        for key, title in (("best", "best whole round"), ("chunk_min", "min per chunk")):
            verdict = "met" if figures[key] >= TARGET else "NOT met"
            print(f"  target {TARGET:,} lines/s, {row} ({impl}, {title}): {verdict}")
    if args.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "normalize.json").write_text(
        json.dumps(
            {
                "machine": machine,
                "lines": len(lines),
                "rounds": args.rounds,
                "timer": "process_time; best = best round, chunk_min = sum of per-chunk minima",
                "gc_frozen": args.gc_freeze,
                "implementations": impls,
                "stages": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
