"""Logging set-up: JSON lines for Cloud Logging (text in a terminal), secrets always redacted.

* Every record goes through ``RedactingFilter`` first: its message, its exception and stack
  text *and* its structured extras (``extra={...}``) are scrubbed of tokens, so neither the
  text nor the JSON formatter can print one.
* ``JsonFormatter`` writes one object per line in the shape Cloud Logging parses:
  ``severity``, ``message``, ``time``, ``logging.googleapis.com/trace`` (from the
  envelope's ``traceId`` extra: ``projects/<project>/traces/<traceId>`` when the project is
  known), plus ``service``, ``component``, ``eventId``, ``channel``, ``userLogin``,
  ``errorCode`` when present.
* ``RepeatLimiter`` lets at most 10 records of one kind (logger, level, message template)
  through per 10 s and says how many it dropped.
* Where logs go: stdout, except with ``MESSAGE_BUS_DRIVER=stdout`` (stdout then carries the
  envelopes, so logs go to stderr; Cloud Run parses JSON on either stream). The format is
  ``LOG_FORMAT``: ``json``, ``text``, or ``auto`` = text when stderr is a terminal.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

import orjson

_PATTERNS = [
    re.compile(r"(oauth:)[^\s'\"]+", re.IGNORECASE),
    re.compile(
        r"((?:Authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:Bearer|OAuth)\s+)?|(?:Bearer|OAuth)\s+)"
        r"[^\s'\",}]+",
        re.IGNORECASE,
    ),
    re.compile(
        r"((?:access_token|refresh_token|client_secret|accessToken|refreshToken|clientSecret)"
        r"['\"]?\s*[:=]\s*['\"]?)[^\s'\",&}]+",
        re.IGNORECASE,
    ),
]
REDACTED = "[REDACTED]"
# Extras whose *value* is a secret whatever it looks like (``extra={"authorization": ...}``).
_SECRET_KEYS = re.compile(
    r"^(authorization|access_?token|refresh_?token|client_?secret|token|password|secret)$",
    re.IGNORECASE,
)

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

# Structured fields copied from ``extra=`` into the JSON line under these names.
STRUCTURED_FIELDS = ("eventId", "channel", "userLogin", "errorCode")


class RedactingFilter(logging.Filter):
    """Rewrites each record's message, exception text and extras with secrets masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = {s for s in secrets if len(s) >= 6}

    def add_secret(self, value: str) -> None:
        if len(value) >= 6:
            self.secrets.add(value)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    def _redact_value(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if depth > 4:
            return value
        if isinstance(value, dict):
            return {
                k: REDACTED
                if isinstance(k, str) and _SECRET_KEYS.match(k) and v
                else self._redact_value(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return type(value)(self._redact_value(v, depth + 1) for v in value)
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRIBUTES:
                continue
            if _SECRET_KEYS.match(key) and value:
                record.__dict__[key] = REDACTED
            elif isinstance(value, (str, dict, list, tuple)):
                record.__dict__[key] = self._redact_value(value)
        return True


REDACTION = RedactingFilter()


class RepeatLimiter(logging.Filter):
    """At most ``burst`` records per ``window_s`` for each (logger, level, message template):
    a flood of one kind (a parse warning per hostile line, asyncio's accept error at the
    fd limit) cannot fill the disk or starve the loop. The first record let through after
    a suppression says how many were dropped; counters keep the real totals."""

    def __init__(self, burst: int = 10, window_s: float = 10.0, max_keys: int = 1024) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.max_keys = max_keys
        self.suppressed = 0  # records dropped so far, all keys
        self._windows: dict[tuple[str, int, str], list[float | int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg)[:200])
        window = self._windows.get(key)
        now = time.monotonic()
        if window is None or now - window[0] >= self.window_s:
            if len(self._windows) >= self.max_keys:
                self._windows.clear()
            dropped = int(window[2]) if window is not None else 0
            self._windows[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.getMessage()} [{dropped} similar records suppressed]"
                record.args = None
            return True
        if window[1] < self.burst:
            window[1] += 1
            if window[1] == self.burst:
                record.msg = (
                    f"{record.getMessage()} [similar records: at most {self.burst} per "
                    f"{self.window_s:g} s from now on]"
                )
                record.args = None
            return True
        window[2] += 1
        self.suppressed += 1
        return False


REPEATS = RepeatLimiter()


def _component(logger_name: str) -> str:
    """``ingress_egress.sources.irc.client`` -> ``sources.irc.client``; others unchanged."""
    prefix = "ingress_egress."
    return logger_name[len(prefix) :] if logger_name.startswith(prefix) else logger_name


def _rfc3339(created: float) -> str:
    whole = int(created)
    micros = int((created - whole) * 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, in the shape Cloud Logging's agent reads from a stream."""

    def __init__(self, service: str = "ingress-egress", project: str = "") -> None:
        super().__init__()
        self.service = service
        self.project = project

    def trace_field(self, trace_id: str) -> str:
        return f"projects/{self.project}/traces/{trace_id}" if self.project else trace_id

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{record.stack_info}"
        extras = record.__dict__
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": message,
            "time": _rfc3339(record.created),
            "service": self.service,
            "component": extras.get("component") or _component(record.name),
            "logger": record.name,
        }
        trace_id = extras.get("traceId")
        if trace_id:
            entry["logging.googleapis.com/trace"] = self.trace_field(str(trace_id))
            span_id = extras.get("spanId")
            if span_id:
                entry["logging.googleapis.com/spanId"] = str(span_id)
        for name in STRUCTURED_FIELDS:
            value = extras.get(name)
            if value is not None and value != "":
                entry[name] = value
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal; structured fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = record.__dict__
        fields = [
            f"{name}={extras[name]}" for name in (*STRUCTURED_FIELDS, "traceId") if extras.get(name)
        ]
        if not fields:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} [{' '.join(fields)}]{newline}{rest}"


def log_stream(bus_driver: str) -> IO[str]:
    """stdout, unless the bus itself writes envelopes there (``stdout`` driver)."""
    return sys.stderr if bus_driver == "stdout" else sys.stdout


def wants_json(log_format: str, stream: IO[str] | None = None) -> bool:
    if log_format in ("json", "text"):
        return log_format == "json"
    terminal = stream if stream is not None else sys.stderr
    try:
        return not terminal.isatty()
    except (AttributeError, ValueError):
        return True


def configure(
    level: str = "INFO",
    secrets: Iterable[str] = (),
    *,
    log_format: str = "auto",
    stream: IO[str] | None = None,
    project: str = "",
    service: str = "ingress-egress",
) -> logging.Handler:
    """Install the one root handler (redacting, JSON or text) and return it."""
    for secret in secrets:
        REDACTION.add_secret(secret)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if wants_json(log_format):
        handler.setFormatter(JsonFormatter(service=service, project=project))
    else:
        handler.setFormatter(TextFormatter())
    handler.addFilter(REPEATS)  # first: a dropped record costs no redaction
    handler.addFilter(REDACTION)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler
