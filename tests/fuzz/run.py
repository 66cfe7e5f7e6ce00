"""``make fuzz``: the differential target under atheris (libFuzzer), for a bounded time.

    python -m tests.fuzz.run SECONDS [WORK_DIR]

The seed corpus (tests/fuzz/seeds.py, from tests/fixtures/) and the regression inputs are
written to WORK_DIR/seeds; what the fuzzer learns goes to WORK_DIR/corpus; a failing input
is saved as WORK_DIR/crash-* (copy it to tests/fuzz/regressions/ to keep it as a test).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ingress_egress", "tests.fuzz"]):
    from tests.fuzz import both, seeds, target


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    work = Path(sys.argv[2] if len(sys.argv) > 2 else "build/fuzz")
    seed_dir, corpus_dir = work / "seeds", work / "corpus"
    for folder in (seed_dir, corpus_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for name, data in {**seeds.seeds(), **seeds.regressions()}.items():
        (seed_dir / name).write_bytes(data)
    print(f"fuzz: backend {both.BACKEND}, native {both.NATIVE}, {seconds} s", flush=True)
    args = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        "-max_len=65536",
        "-timeout=10",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={work}/",
        str(corpus_dir),
        str(seed_dir),
    ]
    atheris.Setup(args, target.check_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
