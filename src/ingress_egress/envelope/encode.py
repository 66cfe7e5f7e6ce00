"""Envelope -> JSON bytes, encoded once per envelope."""

from __future__ import annotations

from typing import Any

import orjson


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """UTF-8 JSON. orjson escapes every control character, so user text cannot break it."""
    return orjson.dumps(envelope)


def traceparent(trace_id: str, span_id: str) -> str:
    """W3C ``traceparent`` for a span of the envelope's trace (sampled flag set)."""
    return f"00-{trace_id}-{span_id}-01"
