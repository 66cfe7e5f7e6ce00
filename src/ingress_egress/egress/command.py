"""A send command from ``${BUS_PREFIX}internal.egress.v1``, decoded and checked.

Two ways to fail, and nothing else ever escapes ``decode_command``:

* ``UnreadableCommand``: not JSON, not an object, too large, or without an ``id`` we can
  use to answer (report) it. Nobody can be told about it, so it goes to the dead-letter
  subject with the reason (``dead_letter.py``).
* ``InvalidCommand``: it has a usable id but breaks the contract (wrong type, bad channel,
  empty text, ...). It is answered with a ``dropped`` result, reason ``invalid`` (or
  ``too_long`` for a text past ``MAX_TEXT_CODE_POINTS``), and never sent.

docs/schemas/egress-command.schema.json states the same rules; a test holds the two together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ingress_egress.twitch.logins import channel_login

COMMAND_TYPE = "egress.chat.message.v1"
DEFAULT_FINALIZATION_DESTINATION = "internal.finalizer.v1"
MAX_COMMAND_BYTES = 128 * 1024
# Ten Twitch messages' worth: a longer answer would take a whole 30 s budget of a
# non-privileged bot by itself.
MAX_TEXT_CODE_POINTS = 5000

# An id we can answer under: it becomes a ledger key, part of the result id and a
# Nats-Msg-Id, so printable ASCII without spaces, bounded.
_USABLE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# W3C trace ids as the platform's envelopes carry them (32 hex), or the UUID form the
# egress contract's example shows: both name the same 128 bits, kept as given.
_TRACE_ID = re.compile(
    r"^(?!0{32}$)(?!00000000-0000-0000-0000-000000000000$)"
    r"([0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_CHANNEL = re.compile(r"^ *#?[A-Za-z0-9_]{1,25} *$")
_CHANNEL_ID = re.compile(r"^[0-9]{1,20}$")
_REPLY_TO = re.compile(r"^[A-Za-z0-9\-]{1,64}$")
_DESTINATION = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")
_DESTINATION_MAX = 200
# A character Twitch would show: neither a control character nor whitespace (the same
# class, written out, as the schema's pattern for ``payload.text``).
_VISIBLE = re.compile(
    "[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
_TOP_LEVEL = ("v", "id", "correlationId", "traceId", "timestamp", "type", "target", "payload")
_TARGET_KEYS = frozenset({"platform", "channel", "channelId"})
_PAYLOAD_KEYS = frozenset({"text", "replyTo", "isAction"})


@dataclass(frozen=True, slots=True)
class EgressCommand:
    id: str
    correlation_id: str
    trace_id: str
    timestamp: str  # as given
    issued_at: float  # ``timestamp`` as epoch seconds
    channel: str  # a login, normalised
    channel_id: str | None
    text: str
    reply_to: str | None
    is_action: bool
    finalization_destination: str


class UnreadableCommand(Exception):
    """Not a command at all: ``reason`` says why (dead-lettered, never answered)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidCommand(Exception):
    """A command that breaks the contract; what could be read of it, to answer it with."""

    def __init__(self, detail: str, fields: dict[str, Any], *, reason: str = "invalid") -> None:
        super().__init__(f"command {fields.get('id')}: {detail}")
        self.reason = reason  # the result's reason code: "invalid" or "too_long"
        self.detail = detail  # what exactly is wrong, for people
        self.command_id: str = fields["id"]
        self.correlation_id = _string_or_none(fields.get("correlationId"))
        self.trace_id = _string_or_none(fields.get("traceId"))
        self.channel = _channel_or_none(fields.get("target"))
        self.finalization_destination = _destination_or_default(
            fields.get("finalizationDestination")
        )


def decode_command(data: bytes | bytearray | memoryview) -> EgressCommand:
    """The command in ``data``; raises only ``UnreadableCommand`` or ``InvalidCommand``."""
    body = _parse(data)
    problem = _problem(body)
    if problem is not None:
        detail, reason = problem
        raise InvalidCommand(detail, body, reason=reason)
    return _build(body)


def _parse(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    size = len(data)
    if size > MAX_COMMAND_BYTES:
        raise UnreadableCommand(f"command of {size} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        body = orjson.loads(bytes(data))
    except orjson.JSONDecodeError as error:
        raise UnreadableCommand(f"not JSON: {error}") from None
    if not isinstance(body, dict):
        raise UnreadableCommand(f"not a JSON object but {type(body).__name__}")
    command_id = body.get("id")
    if not _matches(_USABLE_ID, command_id):
        raise UnreadableCommand("no usable id (1-128 of A-Z a-z 0-9 . _ : -)")
    return body


def _problem(body: dict[str, Any]) -> tuple[str, str] | None:
    """What breaks the contract (detail, reason code), or None."""
    for check in (_frame_problem, _target_problem, _payload_problem):
        found = check(body)
        if found is not None:
            return found
    return None


def _frame_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    missing = [key for key in _TOP_LEVEL if key not in body]
    if missing:
        return f"missing {', '.join(missing)}", "invalid"
    checks = (
        ("v", body["v"] == "1", 'must be "1"'),
        ("id", _matches(_UUID, body["id"]), "must be a lowercase UUID"),
        ("correlationId", _matches(_UUID, body["correlationId"]), "must be a lowercase UUID"),
        (
            "traceId",
            _matches(_TRACE_ID, body["traceId"]),
            "must be 32 lowercase hex or a lowercase UUID, not all 0",
        ),
        ("timestamp", _epoch(body["timestamp"]) is not None, "must be ISO 8601 with a zone"),
        ("type", body["type"] == COMMAND_TYPE, f'must be "{COMMAND_TYPE}"'),
        ("finalizationDestination", _destination_ok(body), "must be a subject like a.b.v1"),
    )
    for name, ok, rule in checks:
        if not ok:
            return f"{name} {rule}", "invalid"
    return None


def _target_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    target = body["target"]
    if not isinstance(target, dict):
        return "target must be an object", "invalid"
    if unknown := set(target) - _TARGET_KEYS:
        return f"target has unknown fields {sorted(unknown)}", "invalid"
    if target.get("platform") != "twitch":
        return 'target.platform must be "twitch"', "invalid"
    if _channel_or_none(target) is None:
        return "target.channel must be a Twitch login", "invalid"
    channel_id = target.get("channelId")
    if channel_id is not None and not _matches(_CHANNEL_ID, channel_id):
        return "target.channelId must be a room id (digits) or null", "invalid"
    return None


def _payload_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    payload = body["payload"]
    if not isinstance(payload, dict):
        return "payload must be an object", "invalid"
    if unknown := set(payload) - _PAYLOAD_KEYS:
        return f"payload has unknown fields {sorted(unknown)}", "invalid"
    text = payload.get("text")
    if not isinstance(text, str) or _VISIBLE.search(text) is None:
        return "payload.text must be a string with a visible character", "invalid"
    if len(text) > MAX_TEXT_CODE_POINTS:
        return f"payload.text has {len(text)} code points (at most {MAX_TEXT_CODE_POINTS})", (
            "too_long"
        )
    reply_to = payload.get("replyTo")
    if reply_to is not None and not _matches(_REPLY_TO, reply_to):
        return "payload.replyTo must be a Twitch message id or null", "invalid"
    if not isinstance(payload.get("isAction", False), bool):
        return "payload.isAction must be true or false", "invalid"
    return None


def _build(body: dict[str, Any]) -> EgressCommand:
    target, payload = body["target"], body["payload"]
    issued_at = _epoch(body["timestamp"])
    channel = channel_login(target["channel"])
    assert issued_at is not None and channel is not None  # checked by _problem
    return EgressCommand(
        id=body["id"],
        correlation_id=body["correlationId"],
        trace_id=body["traceId"],
        timestamp=body["timestamp"],
        issued_at=issued_at,
        channel=channel,
        channel_id=target.get("channelId"),
        text=payload["text"],
        reply_to=payload.get("replyTo"),
        is_action=payload.get("isAction", False),
        finalization_destination=_destination_or_default(body.get("finalizationDestination")),
    )


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    # fullmatch: "$" alone would also accept a trailing newline
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _epoch(value: object) -> float | None:
    if not _matches(_TIMESTAMP, value):
        return None
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:  # the right shape, an impossible date (month 13)
        return None


def _destination_ok(body: dict[str, Any]) -> bool:
    value = body.get("finalizationDestination", DEFAULT_FINALIZATION_DESTINATION)
    return _matches(_DESTINATION, value) and len(value) <= _DESTINATION_MAX


def _destination_or_default(value: object) -> str:
    if _matches(_DESTINATION, value) and len(str(value)) <= _DESTINATION_MAX:
        return str(value)
    return DEFAULT_FINALIZATION_DESTINATION


def _string_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and len(value) <= 128 else None


def _channel_or_none(target: object) -> str | None:
    if not isinstance(target, dict):
        return None
    channel = target.get("channel")
    if not _matches(_CHANNEL, channel):
        return None
    return channel_login(channel)
