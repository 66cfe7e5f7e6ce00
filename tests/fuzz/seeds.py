"""The seed corpus, built from tests/fixtures/ (real Twitch IRC lines), and the committed
regression inputs (tests/fuzz/regressions/: inputs that once made the two sides differ)."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURE = Path(__file__).parent.parent / "fixtures" / "twitch_irc_vectors.jsonl"
REGRESSIONS = Path(__file__).parent / "regressions"


def fixture_lines() -> list[str]:
    rows = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    return [row["raw"] for row in rows if row["raw_kind"] == "line"]


def seeds() -> dict[str, bytes]:
    """name -> input (target.py's layout): each fixture line alone, all of them in one
    batch and in several, CRLF and LF, with GC pressure, and lines with thousands of
    badges / tags (the repeat marker)."""
    lines = [line.encode() for line in fixture_lines()]
    out: dict[str, bytes] = {}
    for i, line in enumerate(lines):
        out[f"line-{i:03d}"] = bytes([i % 4]) + line + b"\r\n"
    out["all-lf"] = b"\x00" + b"\n".join(lines) + b"\n"
    out["all-gc"] = b"\x01" + b"\r\n".join(lines) + b"\r\n"
    out["batches"] = b"\x02" + b"\n\x1e\n".join(
        b"\r\n".join(lines[i : i + 5]) for i in range(0, len(lines), 5)
    )
    privmsg = next(line for line in lines if b" PRIVMSG " in line and b"badges=" in line)
    tags, rest = privmsg.split(b" ", 1)
    out["many-badges"] = (
        b"\x00" + tags.replace(b"badges=", b"badges=\x1d\xffsub/1,\x1d", 1) + b" " + rest + b"\n"
    )
    out["many-tags"] = b"\x00" + tags + b";\x1d\xffk=v;\x1dz=1 " + rest + b"\n"
    out["many-emotes"] = b"\x00" + tags + b";emotes=25:\x1d\x800-1,\x1d0-1 " + rest + b"\n"
    return out


def regressions() -> dict[str, bytes]:
    return {
        path.name: path.read_bytes() for path in sorted(REGRESSIONS.glob("*")) if path.is_file()
    }
