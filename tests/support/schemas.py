"""Validate envelopes against the published JSON Schemas in docs/schemas/."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"
BY_TYPE = {
    "external.chat.message.v1": "chat-message.schema.json",
    "external.chat.notification.v1": "chat-notification.schema.json",
    "external.chat.moderation.v1": "chat-moderation.schema.json",
    "external.chat.roomstate.v1": "chat-roomstate.schema.json",
}


@functools.cache
def _validators() -> dict[str, Draft202012Validator]:
    documents = {
        path.name: json.loads(path.read_text()) for path in SCHEMA_DIR.glob("*.schema.json")
    }
    registry = Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in documents.values()
    )
    return {
        kind: Draft202012Validator(documents[name], registry=registry)
        for kind, name in BY_TYPE.items()
    }


def validate_envelope(envelope: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` unless the envelope matches its type's schema."""
    _validators()[envelope["type"]].validate(envelope)
