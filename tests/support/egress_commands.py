"""Egress send commands for tests, and validators for the egress schemas in docs/schemas/."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
COMMAND_ID = "3f2a9c4e-1b7d-4c8e-9f00-1234567890ab"


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """A validator for ``docs/schemas/<name>``, resolving references to the other schemas."""
    documents = [json.loads(path.read_text()) for path in SCHEMAS.glob("*.schema.json")]
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents
    )
    return Draft202012Validator(json.loads((SCHEMAS / name).read_text()), registry=registry)


def command(**changes: Any) -> dict[str, Any]:
    """A valid command to ``forsen``; ``changes`` replace top-level fields."""
    body: dict[str, Any] = {
        "v": "1",
        "id": COMMAND_ID,
        "correlationId": "0b6f1a52-3a0e-4b8e-9d53-0d0d1e2a7c11",
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "timestamp": "2026-12-08T00:40:00.123Z",
        "type": "egress.chat.message.v1",
        "target": {"platform": "twitch", "channel": "forsen", "channelId": "22484632"},
        "payload": {"text": "pong", "replyTo": None, "isAction": False},
        "finalizationDestination": "internal.finalizer.v1",
    }
    body.update(changes)
    return body


def encode(body: object) -> bytes:
    """JSON as any producer might write it (the standard library: big integers, escapes)."""
    return json.dumps(body).encode()
