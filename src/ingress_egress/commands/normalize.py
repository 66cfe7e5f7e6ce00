"""``ingress-egress normalize [FILE]``: raw Twitch IRC lines in, one JSON object per line out.

Streams (constant memory), never stops on bad input, and doubles as the backfill tool for
raw-line chat logs (the format justlog/rustlog keep).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import orjson

from ingress_egress.envelope import EnvelopeBuilder
from ingress_egress.envelope.types import EVENT_TYPES, SHORT_NAMES
from ingress_egress.protocol import IrcParseError, parse_line
from ingress_egress.sources.irc.transport import MAX_INCOMING_LINE_BYTES
from ingress_egress.twitch.messages import from_irc

_FLUSH_BYTES = 1 << 16


@dataclass
class NormalizeStats:
    lines: int = 0
    envelopes: int = 0
    ignored: int = 0
    errors: int = 0
    invalid_utf8: int = 0
    oversized: int = 0  # lines over MAX_INCOMING_LINE_BYTES: an error record without the line
    filtered: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> bytes:
        return orjson.dumps({"summary": self.__dict__})


def resolve_types(names: Iterable[str]) -> frozenset[str]:
    """``["message", "external.chat.moderation.v1"]`` -> full type names; ValueError if unknown."""
    types = set()
    for name in names:
        full = SHORT_NAMES.get(name, name)
        if full not in EVENT_TYPES:
            known = ", ".join([*SHORT_NAMES, *EVENT_TYPES])
            raise ValueError(f"unknown --type {name!r} (known: {known})")
        types.add(full)
    return frozenset(types)


class LineNormalizer:
    """One raw line -> the JSON record ``normalize`` prints for it (or ``None`` if filtered)."""

    def __init__(self, types: frozenset[str] = frozenset(), use_sent_time: bool = False) -> None:
        self.types = types
        self.use_sent_time = use_sent_time
        self.builder = EnvelopeBuilder(roomstate_window_ms=None)  # see EnvelopeBuilder
        self.stats = NormalizeStats()

    def record(self, raw: bytes) -> tuple[bytes | None, bool]:
        """(JSON bytes or None when filtered out, whether it is an error record)."""
        stats = self.stats
        stats.lines += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats.invalid_utf8 += 1
            line = raw.decode("utf-8", errors="replace")
        line = line.rstrip("\r\n")
        try:
            typed = from_irc(parse_line(line))
        except IrcParseError as error:
            stats.errors += 1
            return orjson.dumps({"error": error.reason, "raw": line}), True
        try:
            envelope = self.builder.build(typed, self._received_at(typed))
            encoded = None if envelope is None else orjson.dumps(envelope)
        except Exception as error:  # a backfill never stops at one line: say why, go on
            stats.errors += 1
            reason = f"cannot convert: {type(error).__name__}: {str(error)[:200]}"
            return orjson.dumps({"error": reason, "raw": line}), True
        if envelope is None or encoded is None:
            stats.ignored += 1
            if self.types:
                stats.filtered += 1
                return None, False
            return orjson.dumps({"ignored": typed.irc.command}), False
        kind = envelope["type"]
        if self.types and kind not in self.types:
            stats.filtered += 1
            return None, False
        stats.envelopes += 1
        stats.by_type[kind] = stats.by_type.get(kind, 0) + 1
        return encoded, False

    def oversized(self, size: int) -> bytes:
        """The error record of a line over the limit (the service discards it too)."""
        self.stats.lines += 1
        self.stats.errors += 1
        self.stats.oversized += 1
        return orjson.dumps({"error": f"line over {MAX_INCOMING_LINE_BYTES} bytes ({size} bytes)"})

    def _received_at(self, typed: object) -> float | None:
        if not self.use_sent_time:
            return None
        sent_ms = getattr(typed, "sent_at_ms", None)
        return sent_ms / 1000 if sent_ms else None


def bounded_lines(source: BinaryIO) -> Iterator[bytes | int]:
    """The source's lines, each at most MAX_INCOMING_LINE_BYTES (plus its CRLF); for a longer one
    its byte count instead, its bytes read in slices and dropped (constant memory)."""
    limit = MAX_INCOMING_LINE_BYTES + 3  # a line at the limit, its CRLF, and one byte to tell
    while raw := source.readline(limit):
        if len(raw) < limit or raw.endswith(b"\n"):
            content = len(raw.rstrip(b"\r\n"))
            yield raw if content <= MAX_INCOMING_LINE_BYTES else content
            continue
        size = len(raw)
        while (more := source.readline(1 << 16)) and not more.endswith(b"\n"):
            size += len(more)
        yield size + len(more.rstrip(b"\r\n"))


def run(
    source: BinaryIO,
    out: BinaryIO,
    err: BinaryIO,
    normalizer: LineNormalizer,
) -> NormalizeStats:
    pending: list[bytes] = []
    size = 0
    record: bytes | None
    for raw in bounded_lines(source):
        if isinstance(raw, int):
            record, is_error = normalizer.oversized(raw), True
        else:
            record, is_error = normalizer.record(raw)
        if record is None:
            continue
        if is_error and normalizer.types:
            # Filtered output stays pure envelopes; errors still reach the operator.
            err.write(record + b"\n")
            continue
        pending.append(record)
        size += len(record)
        if size >= _FLUSH_BYTES:
            out.write(b"\n".join(pending) + b"\n")
            pending.clear()
            size = 0
    if pending:
        out.write(b"\n".join(pending) + b"\n")
    out.flush()
    return normalizer.stats


def main(path: str | None, types: list[str], use_sent_time: bool, summary: bool) -> int:
    try:
        wanted = resolve_types(types)
    except ValueError as error:
        print(f"normalize: {error}", file=sys.stderr)
        return 2
    normalizer = LineNormalizer(wanted, use_sent_time)
    if path in (None, "-"):
        stats = run(sys.stdin.buffer, sys.stdout.buffer, sys.stderr.buffer, normalizer)
    else:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as error:
            print(f"normalize: cannot read {path}: {error.strerror}", file=sys.stderr)
            return 2
        with handle:
            stats = run(handle, sys.stdout.buffer, sys.stderr.buffer, normalizer)
    if summary:
        sys.stderr.buffer.write(stats.as_json() + b"\n")
        sys.stderr.flush()
    return 0
