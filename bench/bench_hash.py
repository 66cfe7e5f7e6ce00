"""Why the direct path carries its own SHA-1: what hashlib would cost it per chat line.

    .venv/bin/python bench/bench_hash.py [--count 200000]

A chat line's envelope id is the UUIDv5 of its Twitch id (``envelope.ids.stable_uuid``).
The direct path (``_native/_speedups.c``) hashes it with a scalar SHA-1 of its own; through
hashlib it would make a Python-level call chain per line (``sha1(data)``, ``.digest()``, and
the bytes object in between). This times that chain (loop overhead subtracted) against the
native codec's whole per-line cost, measured here the same way as ``bench_lines.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
import uuid

from ingress_egress.config import pure_python
from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.ids import ENVELOPE_NAMESPACE
from ingress_egress.simulator import TrafficGenerator
from ingress_egress.sources.irc.codec import make_codec

PREFIX = ENVELOPE_NAMESPACE.bytes + b"twitch:"


def per_call(count: int) -> float:
    names = [str(uuid.UUID(int=i)).encode() for i in range(count)]
    sha1 = hashlib.sha1
    start = time.process_time()
    for name in names:
        sha1(PREFIX + name, usedforsecurity=False).digest()
    hashed = time.process_time() - start
    start = time.process_time()
    for name in names:
        PREFIX + name
    baseline = time.process_time() - start
    return (hashed - baseline) / count * 1e6


def per_line(count: int) -> float:
    generator = TrafficGenerator(seed=11)
    lines = [generator.privmsg(f"chan{i % 5}")[0] for i in range(20000)]
    codec = make_codec(EnvelopeBuilder(), pure=pure_python(os.environ))
    if codec.name != "native":
        raise SystemExit("the C extension is not built: make install")
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for i in range(0, len(lines), 50):
            codec.decode(lines[i : i + 50], 1_700_000_000.25)
        best = min(best, time.process_time() - start)
    return best / len(lines) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200000)
    args = parser.parse_args()
    hashing = min(per_call(args.count) for _ in range(3))
    line = per_line(args.count)
    print(f"hashlib SHA-1 of one envelope id, from Python: {hashing:.3f} us")
    print(f"native codec, one chat line (id hashed in C):  {line:.3f} us")
    print(f"hashlib would add {hashing / line:.0%} to the direct path's per-line cost")


if __name__ == "__main__":
    main()
