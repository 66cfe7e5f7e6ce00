"""us per PRIVMSG of the IRC codec's ``decode`` over the simulator's traffic: native vs Python.

    .venv/bin/python bench/bench_lines.py [--lines 20000] [--batch 50] [--rounds 5]
    .venv/bin/python bench/bench_lines.py --against OTHER_CHECKOUT   # A/B with another tree

The lines come from ``TrafficGenerator`` (mostly PRIVMSGs, ~5% cheers, replies, emotes),
handed over in batches of ``--batch`` lines as one socket read would be. Each figure is
process CPU time, best of ``--rounds``; compare ratios (the machine is shared and noisy).

``--against DIR`` also times the codec of the checkout in DIR (its ``src`` and built
extension), in a child process, alternating with this tree's round by round: the before /
after of a change to the codec, in one run. A checkout from before the codec package (its
``sources/irc/codec.py`` ``IrcCodec``) is timed through that class.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ingress_egress.config import pure_python

RECEIVED = 1_700_000_000.25


def batches(count: int, size: int) -> list[list[str]]:
    from ingress_egress.simulator import TrafficGenerator

    generator = TrafficGenerator(seed=11)
    lines = [generator.privmsg(f"chan{i % 5}")[0] for i in range(count)]
    return [lines[i : i + size] for i in range(0, count, size)]


def make(kind: str) -> Any:
    """A codec of this tree: "native", "python", or whatever an older tree has ("auto")."""
    from ingress_egress.envelope import EnvelopeBuilder

    try:
        from ingress_egress.sources.irc.codec import PythonCodec, make_codec
    except ImportError:  # a tree from before the codec package
        from ingress_egress.sources.irc.codec import IrcCodec  # type: ignore[attr-defined]

        return IrcCodec(EnvelopeBuilder())
    if kind == "python":
        return PythonCodec(EnvelopeBuilder())
    codec = make_codec(EnvelopeBuilder(), pure=pure_python(os.environ))
    if kind == "native" and codec.name != "native":
        raise SystemExit("the C extension is not built: make install")
    return codec


def run_once(codec: Any, chunks: list[list[str]]) -> float:
    start = time.process_time()
    for chunk in chunks:
        codec.decode(chunk, RECEIVED)
    return time.process_time() - start


def serve_child(count: int, size: int) -> None:
    """--child: time rounds on request (one line in: a kind; one line out: seconds)."""
    chunks = batches(count, size)
    codec = make("native")
    for request in sys.stdin:
        if request.strip() == "quit":
            return
        print(json.dumps(run_once(codec, chunks)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout to time alternately")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_child(args.lines, args.batch)
        return
    chunks = batches(args.lines, args.batch)
    native = make("native")
    other = None
    if args.against is not None:
        env = {**os.environ, "PYTHONPATH": f"{args.against / 'src'}:{args.against}"}
        other = subprocess.Popen(
            [sys.executable, __file__, "--child", f"--lines={args.lines}", f"--batch={args.batch}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=args.against,
        )
    best = {"native": float("inf"), "against": float("inf")}
    for _ in range(args.rounds):
        best["native"] = min(best["native"], run_once(native, chunks))
        if other is not None:
            assert other.stdin is not None and other.stdout is not None
            other.stdin.write("round\n")
            other.stdin.flush()
            best["against"] = min(best["against"], json.loads(other.stdout.readline()))
    if other is not None:
        assert other.stdin is not None
        other.stdin.write("quit\n")
        other.stdin.flush()
        other.wait()
    pure = min(run_once(make("python"), chunks) for _ in range(2))
    per = {name: seconds / args.lines * 1e6 for name, seconds in best.items()}
    print(f"codec.decode, {args.lines} simulator lines in batches of {args.batch}")
    print(f"  native codec (this tree):   {per['native']:6.2f} us/PRIVMSG")
    if other is not None:
        print(f"  codec of {args.against}: {per['against']:6.2f} us/PRIVMSG")
        print(f"  this tree / that tree:      {per['native'] / per['against']:6.3f}")
    print(f"  Python codec (reference):   {pure / args.lines * 1e6:6.2f} us/PRIVMSG")
    declined = getattr(native, "declined", None)
    if declined is not None:
        print(f"  direct path declined {declined} of {native.lines} lines")


if __name__ == "__main__":
    main()
