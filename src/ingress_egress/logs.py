"""Logging set-up with a redaction filter: no token or secret ever reaches a log record."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

_PATTERNS = [
    re.compile(r"(oauth:)[^\s'\"]+", re.IGNORECASE),
    re.compile(
        r"((?:Authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:Bearer|OAuth)\s+)?|(?:Bearer|OAuth)\s+)"
        r"[^\s'\",}]+",
        re.IGNORECASE,
    ),
    re.compile(
        r"((?:access_token|refresh_token|client_secret|accessToken|refreshToken)"
        r"['\"]?\s*[:=]\s*['\"]?)[^\s'\",&}]+"
    ),
]
REDACTED = "[REDACTED]"


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and exception text) with secrets masked."""

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

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


REDACTION = RedactingFilter()


def configure(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    for secret in secrets:
        REDACTION.add_secret(secret)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(REDACTION)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
