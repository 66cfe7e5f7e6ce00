"""us per PRIVMSG of ``lines_to_outbound`` over the simulator's traffic, direct path on/off.

    .venv/bin/python bench/bench_lines.py [--lines 20000] [--batch 50] [--rounds 5]

The lines come from ``TrafficGenerator`` (mostly PRIVMSGs, a few cheers), handed over in
batches of ``--batch`` lines as one socket read would be. Each figure is process CPU time,
best of ``--rounds``; both run in the same process, alternating, so compare their ratio
(the machine is shared and noisy). "off" is the per-line path (``set_direct_enabled(False)``),
"on" the direct one; "pure" the Python reference, for scale.
"""

from __future__ import annotations

import argparse
import time

from ingress_egress import _native
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.ids import RandomIds
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import lines_to_outbound

RECEIVED = 1_700_000_000.25


def batches(count: int, size: int) -> list[list[str]]:
    generator = TrafficGenerator(seed=11)
    lines = [generator.privmsg(f"chan{i % 5}")[0] for i in range(count)]
    return [lines[i : i + size] for i in range(0, count, size)]


def run_once(chunks: list[list[str]]) -> float:
    builder, span_ids = EnvelopeBuilder(clock=lambda: RECEIVED), RandomIds()
    start = time.process_time()
    for chunk in chunks:
        lines_to_outbound(chunk, builder, RECEIVED, span_ids, 1.0)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    speedups = _native.speedups
    if speedups is None or not hasattr(speedups, "set_direct_enabled"):
        raise SystemExit("the C extension (with the direct path) is not built: make install")
    chunks = batches(args.lines, args.batch)
    best = {"off": float("inf"), "on": float("inf")}
    try:
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                speedups.set_direct_enabled(mode == "on")
                best[mode] = min(best[mode], run_once(chunks))
        taken_before, declined_before = speedups.direct_stats()
        run_once(chunks)
        taken, declined = (
            a - b
            for a, b in zip(speedups.direct_stats(), (taken_before, declined_before), strict=True)
        )
        _native.set_enabled(False)
        pure = min(run_once(chunks) for _ in range(2))
    finally:
        speedups.set_direct_enabled(True)
        _native.set_enabled(True)
    per = {mode: seconds / args.lines * 1e6 for mode, seconds in best.items()}
    print(f"lines_to_outbound, {args.lines} simulator lines in batches of {args.batch}")
    print(f"  direct path off (per-line C path): {per['off']:6.2f} us/PRIVMSG")
    print(f"  direct path on:                    {per['on']:6.2f} us/PRIVMSG")
    print(f"  ratio on/off:                      {per['on'] / per['off']:6.3f}")
    print(f"  pure Python reference:             {pure / args.lines * 1e6:6.2f} us/PRIVMSG")
    print(f"  direct path took {taken} lines, declined {declined}")


if __name__ == "__main__":
    main()
