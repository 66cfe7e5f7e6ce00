"""Tests wait on conditions, not on the clock: a literal sleep is a guess about how long
something takes. ``eventually`` (tests/support/waiting.py), a fake clock or a later positive
signal is the way to wait; the few sleeps left must let real time pass on purpose and say so
with a ``# fixed wait:`` comment on the same line."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MAX_FIXED_WAITS = 5  # a handful, each with its reason
MARK = "# fixed wait:"


def literal_sleeps(source: str) -> list[tuple[int, str]]:
    """(line number, line) of each ``sleep(<non-zero number>)`` call in ``source``."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        name = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if isinstance(node.func, ast.Name):
            name = node.func.id
        seconds = node.args[0]
        if (
            name == "sleep"
            and isinstance(seconds, ast.Constant)
            and isinstance(seconds.value, int | float)
            and seconds.value != 0
        ):
            found.append((node.lineno, lines[node.lineno - 1]))
    return sorted(found)


def sleeps_in_tests() -> dict[str, list[tuple[int, str]]]:
    out = {}
    for path in sorted(TESTS.rglob("*.py")):
        found = literal_sleeps(path.read_text())
        if found:
            out[str(path.relative_to(TESTS.parent))] = found
    return out


def test_the_scanner_finds_literal_sleeps_and_only_those() -> None:
    source = (
        "import asyncio, time\n"
        "async def f(interval):\n"
        "    await asyncio.sleep(0.5)\n"
        "    time.sleep(2)  # fixed wait: a reason\n"
        "    await asyncio.sleep(0)\n"
        "    await asyncio.sleep(interval)\n"
    )
    assert [n for n, _ in literal_sleeps(source)] == [3, 4]


def test_every_fixed_wait_says_why() -> None:
    unexplained = [
        f"{path}:{number}: {line.strip()}"
        for path, found in sleeps_in_tests().items()
        for number, line in found
        if MARK not in line
    ]
    assert not unexplained, (
        "literal sleeps: wait with eventually(...), a fake clock or a later signal instead, "
        f"or say why real time must pass with '{MARK} <why>':\n" + "\n".join(unexplained)
    )


def test_only_a_handful_of_fixed_waits() -> None:
    found = [f"{path}:{n}" for path, items in sleeps_in_tests().items() for n, _ in items]
    assert len(found) <= MAX_FIXED_WAITS, found
