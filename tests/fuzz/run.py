"""``make fuzz``: the differential target under atheris (libFuzzer), for a bounded time.

    python -m tests.fuzz.run SECONDS [WORK_DIR]

The seed corpus (tests/fuzz/seeds.py, from tests/fixtures/) and the regression inputs are
written to WORK_DIR/seeds; what the fuzzer learns goes to WORK_DIR/corpus; a failing input
is saved as WORK_DIR/crash-* (copy it to tests/fuzz/regressions/ to keep it as a test).

``FUZZ_ENGINE=mutate`` (what ``make sanitize`` uses): no libFuzzer. Under the ASan build
atheris' coverage does not reach libFuzzer (it then mutates a 1-byte input and learns
nothing), so the seeds are mutated at random instead (bytes replaced, inserted, deleted,
seeds spliced, repeat markers added) for SECONDS, from a seed printed at start; a failing
input is saved the same way.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from pathlib import Path

ENGINE = os.environ.get("FUZZ_ENGINE", "libfuzzer")

if ENGINE == "libfuzzer":
    import atheris

    with atheris.instrument_imports(include=["ingress_egress", "tests.fuzz"]):
        from tests.fuzz import both, seeds, target
else:
    from tests.fuzz import both, seeds, target

SPECIAL = [b"\r\n", b"\n", b";", b"=", b"\\", b" :", b"@", b"!", b",", b"/", b"\x1d\x40", b"\x00"]


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randint(0, len(out))
        choice = rng.random()
        if choice < 0.3 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif choice < 0.55:
            out[at:at] = rng.choice(SPECIAL)
        elif choice < 0.75:
            del out[at : at + rng.randint(1, 16)]
        else:
            other = rng.choice(corpus)
            start = rng.randint(0, len(other))
            out[at:at] = other[start : start + rng.randint(1, 200)]
    return bytes(out[:65536])


def mutate_for(seconds: int, corpus: list[bytes], work: Path) -> None:
    seed = int(os.environ.get("FUZZ_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    print(f"fuzz: random mutation, seed {seed}, {seconds} s", flush=True)
    deadline, runs = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(corpus), corpus)
        try:
            target.check_input(data)
        except Exception:
            path = work / f"crash-mutate-{seed}-{runs}"
            path.write_bytes(data)
            traceback.print_exc()
            raise SystemExit(f"fuzz: failing input written to {path}") from None
        runs += 1
    print(f"fuzz: {runs} inputs, all agreed", flush=True)


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    work = Path(sys.argv[2] if len(sys.argv) > 2 else "build/fuzz")
    seed_dir, corpus_dir = work / "seeds", work / "corpus"
    for folder in (seed_dir, corpus_dir):
        folder.mkdir(parents=True, exist_ok=True)
    inputs = {**seeds.seeds(), **seeds.regressions()}
    for name, data in inputs.items():
        (seed_dir / name).write_bytes(data)
    print(f"fuzz: python codec vs native codec (extension: {both.NATIVE}), {ENGINE}", flush=True)
    if ENGINE != "libfuzzer":
        mutate_for(seconds, list(inputs.values()), work)
        return
    args = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        "-max_len=65536",
        f"-timeout={os.environ.get('FUZZ_TIMEOUT_SECONDS', '10')}",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={work}/",
        str(corpus_dir),
        str(seed_dir),
    ]
    atheris.Setup(args, target.check_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
